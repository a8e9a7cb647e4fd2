import { describe, expect, it } from 'vitest';
import { err, ok } from '../../../app/shared/result.js';
import type { Result } from '../../../app/shared/result.js';
import type { DeviceEntry } from '../../../app/shared/types.js';
import { createAppStore } from '../../../renderer/src/store/app-store.js';
import { createFakeApi } from '../fake-api.js';
import { device } from '../fixtures.js';

describe('devices slice', () => {
  it('loads devices and keeps the same array when nothing changed', async () => {
    const fake = createFakeApi({ listDevices: () => ok([device('a'), device('b')]) });
    const store = createAppStore(fake.api);
    await store.getState().refreshDevices();
    const first = store.getState().devices;
    expect(first.map((d) => d.id)).toEqual(['a', 'b']);
    expect(store.getState().devicesLoaded).toBe(true);
    await store.getState().refreshDevices();
    expect(store.getState().devices).toBe(first);
  });

  it('records an error and keeps the last list', async () => {
    let fail = false;
    const fake = createFakeApi({ listDevices: () => (fail ? err('HELPER_LOST', 'gone') : ok([device('a')])) });
    const store = createAppStore(fake.api);
    await store.getState().refreshDevices();
    fail = true;
    await store.getState().refreshDevices();
    expect(store.getState().devicesError?.code).toBe('HELPER_LOST');
    expect(store.getState().devices).toHaveLength(1);
  });

  it('toggles selection in table order and drops devices that disappear', async () => {
    let list = [device('a'), device('b'), device('c')];
    const fake = createFakeApi({ listDevices: () => ok(list) });
    const store = createAppStore(fake.api);
    await store.getState().refreshDevices();
    store.getState().toggleDevice('c');
    store.getState().toggleDevice('a');
    expect(store.getState().selectedDevices).toEqual(['a', 'c']);
    store.getState().toggleDevice('c');
    expect(store.getState().selectedDevices).toEqual(['a']);
    store.getState().setSelectedDevices(['a', 'b']);
    list = [device('b')];
    await store.getState().refreshDevices();
    expect(store.getState().selectedDevices).toEqual(['b']);
  });

  it('creates a lab disk, then refreshes; returns the error on failure', async () => {
    const fake = createFakeApi({
      createLabDisk: (p) => (p.name === 'taken' ? err('EEXIST', 'exists') : ok(device(p.name ?? 'x'))),
      listDevices: () => ok([device('disk1')]),
    });
    const store = createAppStore(fake.api);
    expect(await store.getState().createLabDisk('disk1', 64 * 1024 * 1024)).toBeNull();
    expect(fake.calls.map((c) => c.method)).toEqual(['createLabDisk', 'listDevices']);
    expect(fake.calls[0]?.params).toEqual({ name: 'disk1', sizeBytes: 64 * 1024 * 1024 });
    expect(store.getState().devices.map((d) => d.id)).toEqual(['disk1']);
    expect((await store.getState().createLabDisk('taken', 512))?.code).toBe('EEXIST');
  });

  it('adds an image by path', async () => {
    const fake = createFakeApi({ addImage: () => ok(device('img')), listDevices: () => ok([device('img')]) });
    const store = createAppStore(fake.api);
    expect(await store.getState().addImage('/tmp/img.raw')).toBeNull();
    expect(fake.calls[0]).toEqual({ method: 'addImage', params: { path: '/tmp/img.raw' } });
  });

  it('a slow listDevices answer from before a change neither hides the new device nor drops its tick', async () => {
    const answers: ((r: Result<DeviceEntry[]>) => void)[] = [];
    const fake = createFakeApi({ listDevices: () => new Promise<Result<DeviceEntry[]>>((resolve) => answers.push(resolve)) });
    const store = createAppStore(fake.api);
    const poll = store.getState().refreshDevices();
    const newer = store.getState().refreshDevices();
    await new Promise((r) => setTimeout(r, 0));
    answers[1]?.(ok([device('a'), device('b')]));
    await newer;
    store.getState().toggleDevice('b');
    // The poll's answer predates device b.
    answers[0]?.(ok([device('a')]));
    await poll;
    expect(store.getState().devices.map((d) => d.id)).toEqual(['a', 'b']);
    expect(store.getState().selectedDevices).toEqual(['b']);
  });
});

describe('the Devices selection across a reload', () => {
  it('is saved on change and restored by a new store, then pruned to the devices that exist', async () => {
    let saved: string[] = [];
    const memory = { load: () => saved, save: (ids: string[]) => (saved = ids) };
    const { api } = createFakeApi({ listDevices: () => ok([device('disk1'), device('disk2')]) });
    const first = createAppStore(api, { selectionMemory: memory });
    first.getState().setSelectedDevices(['disk1', 'gone']);
    expect(saved).toEqual(['disk1', 'gone']);
    const reloaded = createAppStore(api, { selectionMemory: memory });
    expect(reloaded.getState().selectedDevices).toEqual(['disk1', 'gone']);
    await reloaded.getState().refreshDevices();
    expect(reloaded.getState().selectedDevices).toEqual(['disk1']);
    expect(saved).toEqual(['disk1']);
  });
});
