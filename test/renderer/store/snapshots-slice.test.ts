import { describe, expect, it, vi } from 'vitest';
import { err, ok } from '../../../app/shared/result.js';
import type { Result } from '../../../app/shared/result.js';
import type { SnapshotEntry } from '../../../app/shared/types.js';
import { createAppStore } from '../../../renderer/src/store/app-store.js';
import { createFakeApi } from '../fake-api.js';
import { MiB, device, snapshot } from '../fixtures.js';

describe('storage and snapshots slices', () => {
  it('allocate validates the directory and the limit, rounds the limit to sectors', () => {
    const store = createAppStore(createFakeApi().api);
    expect(store.getState().allocate('', MiB)?.code).toBe('EINVAL');
    expect(store.getState().allocate('tmp', MiB)?.code).toBe('EINVAL');
    expect(store.getState().allocate('/var/tmp', 0)?.code).toBe('EINVAL');
    expect(store.getState().allocation).toBeNull();
    // Beyond what the contract carries (a safe integer): refused here, not at snapshot create.
    const huge = store.getState().allocate('/var/tmp', 1e20 * MiB);
    expect(huge?.code).toBe('EINVAL');
    expect(huge?.message).toMatch(/at most/);
    expect(store.getState().allocation).toBeNull();
    expect(store.getState().allocate('/var/tmp', MiB + 100)).toBeNull();
    expect(store.getState().allocation).toEqual({ directory: '/var/tmp', limitBytes: MiB });
  });

  it('createSnapshot needs selected devices and an allocation', async () => {
    const fake = createFakeApi();
    const store = createAppStore(fake.api);
    expect((await store.getState().createSnapshot())?.message).toMatch(/Select/);
    store.getState().setSelectedDevices(['a']);
    expect((await store.getState().createSnapshot())?.message).toMatch(/Allocate/);
    expect(fake.calls).toEqual([]);
  });

  it('creates with the selected devices, a new storage file and the limit; then refreshes', async () => {
    const fake = createFakeApi({
      snapshotCreate: () => ok({ snapshotId: 's1' }),
      listSnapshots: () => ok([snapshot('s1', ['a', 'b'])]),
      listDevices: () => ok([device('a'), device('b')]),
      setStorageAllocation: (p) => ok(p),
    });
    const store = createAppStore(fake.api, { now: () => 1234 });
    store.getState().setSelectedDevices(['a', 'b']);
    store.getState().allocate('/var/tmp', 256 * MiB);
    expect(await store.getState().createSnapshot()).toBeNull();
    expect(fake.calls[0]).toEqual({ method: 'setStorageAllocation', params: { directory: '/var/tmp', limitBytes: 256 * MiB } });
    expect(fake.calls[1]).toEqual({
      method: 'snapshotCreate',
      params: { devices: ['a', 'b'], storagePath: '/var/tmp/blksnap-diff-1234.img', limitBytes: 256 * MiB, writableImages: false },
    });
    expect(store.getState().snapshots.map((s) => s.id)).toEqual(['s1']);
    expect(store.getState().snapshotBusy).toBeNull();
    expect(store.getState().notice?.kind).toBe('info');
  });

  it('take and destroy call the API with the id; errors become a notice', async () => {
    const fake = createFakeApi({
      snapshotTake: () => ok(null),
      snapshotDestroy: () => err('ESRCH', 'no such snapshot'),
      listSnapshots: () => ok([]),
      listDevices: () => ok([]),
    });
    const store = createAppStore(fake.api);
    expect(await store.getState().takeSnapshot('s1')).toBeNull();
    expect(fake.calls[0]).toEqual({ method: 'snapshotTake', params: { snapshotId: 's1' } });
    expect((await store.getState().destroySnapshot('s1'))?.code).toBe('ESRCH');
    expect(store.getState().notice).toEqual({ kind: 'error', text: 'ESRCH: no such snapshot' });
  });

  it('a slow listSnapshots answer arriving after a newer one does not bring back a destroyed snapshot', async () => {
    const answers: ((r: Result<SnapshotEntry[]>) => void)[] = [];
    const fake = createFakeApi({
      listSnapshots: () => new Promise<Result<SnapshotEntry[]>>((resolve) => answers.push(resolve)),
      snapshotDestroy: () => ok(null),
      listDevices: () => ok([]),
    });
    const store = createAppStore(fake.api);
    // A poll asks before the destroy; its answer (with s1) is slow.
    const poll = store.getState().refreshSnapshots();
    const destroyed = store.getState().destroySnapshot('s1');
    await new Promise((r) => setTimeout(r, 0));
    expect(answers).toHaveLength(2);
    answers[1]?.(ok([]));
    expect(await destroyed).toBeNull();
    answers[0]?.(ok([snapshot('s1', ['a'])]));
    await poll;
    expect(store.getState().snapshots).toEqual([]);
  });

  it('an older listSnapshots error arriving after a newer success is dropped', async () => {
    const answers: ((r: Result<SnapshotEntry[]>) => void)[] = [];
    const fake = createFakeApi({ listSnapshots: () => new Promise<Result<SnapshotEntry[]>>((resolve) => answers.push(resolve)) });
    const store = createAppStore(fake.api);
    const older = store.getState().refreshSnapshots();
    const newer = store.getState().refreshSnapshots();
    await new Promise((r) => setTimeout(r, 0));
    answers[1]?.(ok([snapshot('s2', ['a'])]));
    await newer;
    answers[0]?.(err('HELPER_UNAVAILABLE', 'lost'));
    await older;
    expect(store.getState().snapshotsError).toBeNull();
    expect(store.getState().snapshots.map((s) => s.id)).toEqual(['s2']);
  });

  it('samples each held snapshot\'s used storage on refresh, for the forecast; a destroyed one is dropped', async () => {
    let t = 0;
    let used = 4 * MiB;
    let list = [snapshot('s1', ['a'])];
    const fake = createFakeApi({
      listSnapshots: () => ok(list.map((s) => ({ ...s, storage: s.storage && { ...s.storage, usedBytes: used } }))),
    });
    const store = createAppStore(fake.api, { now: () => t });
    await store.getState().refreshSnapshots();
    t = 2000;
    used = 10 * MiB;
    await store.getState().refreshSnapshots();
    expect(store.getState().storageSamples.s1).toEqual([
      { timeMs: 0, bytes: 4 * MiB },
      { timeMs: 2000, bytes: 10 * MiB },
    ]);
    list = [];
    t = 3000;
    await store.getState().refreshSnapshots();
    expect(store.getState().storageSamples).toEqual({});
  });

  it('createSnapshot passes a trimmed name, none when blank, and refuses one over 64 characters', async () => {
    const fake = createFakeApi({ snapshotCreate: () => ok({ snapshotId: 's1' }), listSnapshots: () => ok([]), listDevices: () => ok([device('a')]) });
    const store = createAppStore(fake.api, { now: () => 1 });
    store.getState().setSelectedDevices(['a']);
    store.getState().allocate('/var/tmp', MiB);
    expect(await store.getState().createSnapshot({ name: '  before upgrade ' })).toBeNull();
    expect(await store.getState().createSnapshot({ name: '   ' })).toBeNull();
    const long = await store.getState().createSnapshot({ name: 'x'.repeat(65) });
    expect(long?.code).toBe('EINVAL');
    expect(long?.message).toMatch(/at most 64 characters \(this one has 65\)/);
    const params = fake.paramsOf('snapshotCreate');
    expect(params).toHaveLength(2);
    expect(params[0]?.name).toBe('before upgrade');
    expect(params[1]).not.toHaveProperty('name');
  });

  it('the allocation lives in the helper: allocate records it there, a new page loads it back', async () => {
    let kept: { directory: string; limitBytes: number } | null = null;
    const handlers = {
      getStorageAllocation: () => ok(kept),
      setStorageAllocation: (p: { directory: string; limitBytes: number }) => {
        kept = p;
        return ok(p);
      },
    };
    const first = createAppStore(createFakeApi(handlers).api);
    expect(first.getState().allocate('/var/tmp', 3 * MiB + 100)).toBeNull();
    await vi.waitFor(() => expect(kept).toEqual({ directory: '/var/tmp', limitBytes: 3 * MiB }));
    const reloaded = createAppStore(createFakeApi(handlers).api);
    expect(reloaded.getState().allocation).toBeNull();
    await reloaded.getState().loadAllocation();
    expect(reloaded.getState().allocation).toEqual({ directory: '/var/tmp', limitBytes: 3 * MiB });
  });

  it('says when the helper did not keep the allocation', async () => {
    const store = createAppStore(createFakeApi({ setStorageAllocation: () => err('EACCES', 'no') }).api);
    expect(store.getState().allocate('/var/tmp', MiB)).toBeNull();
    await vi.waitFor(() => expect(store.getState().notice?.text).toMatch(/did not keep the allocation \(EACCES: no\)/));
    expect(store.getState().allocation).toEqual({ directory: '/var/tmp', limitBytes: MiB });
  });
});
