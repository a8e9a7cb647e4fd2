import { describe, expect, it } from 'vitest';
import { err, ok } from '../../../app/shared/result.js';
import type { AppStatus, HelperState } from '../../../app/shared/types.js';
import { createAppStore } from '../../../renderer/src/store/app-store.js';
import { createFakeApi } from '../fake-api.js';
import { device } from '../fixtures.js';

function status(helper: HelperState): AppStatus {
  return { driver: 'embedded', driverVersion: null, appVersion: '0', protocolVersion: 1, capabilities: [], helper };
}

describe('ui slice', () => {
  it('openScreen switches the screen and asks for the focus; setScreen does not', () => {
    const store = createAppStore(createFakeApi().api);
    store.getState().setScreen('events');
    expect(store.getState().focusRequest).toBe(0);
    store.getState().openScreen('storage');
    expect(store.getState().screen).toBe('storage');
    expect(store.getState().focusRequest).toBe(1);
    store.getState().openScreen('storage');
    expect(store.getState().focusRequest).toBe(2);
  });

  it('reconnect: on success shows the helper connected and reloads what the new helper has', async () => {
    const fake = createFakeApi({
      reconnect: () => ok(status({ state: 'connected' })),
      listDevices: () => ok([device('disk1')]),
      listSnapshots: () => ok([]),
      listFilesystems: () => ok([]),
    });
    const store = createAppStore(fake.api);
    store.getState().setHelperState({ state: 'lost', message: 'The helper stopped.' });
    const pending = store.getState().reconnect();
    expect(store.getState().reconnecting).toBe(true);
    await pending;
    const s = store.getState();
    expect(s.reconnecting).toBe(false);
    expect(s.helper.state).toBe('connected');
    expect(s.devices.map((d) => d.id)).toEqual(['disk1']);
    expect(fake.calls.map((c) => c.method)).toEqual(expect.arrayContaining(['listDevices', 'listSnapshots', 'listFilesystems']));
    expect(s.notice).toEqual({ kind: 'info', text: 'Reconnected to the helper.' });
  });

  it('reconnect: a failure keeps the helper down with the reason (the banner stays) and says so', async () => {
    const fake = createFakeApi({ reconnect: () => err('HELPER_UNAVAILABLE', 'The helper is not running.') });
    const store = createAppStore(fake.api);
    store.getState().setHelperState({ state: 'lost', message: 'gone' });
    await store.getState().reconnect();
    const s = store.getState();
    expect(s.reconnecting).toBe(false);
    expect(s.helper).toEqual({ state: 'lost', message: 'The helper is not running.' });
    expect(s.notice?.kind).toBe('error');
    expect(s.notice?.text).toMatch(/Reconnect failed: HELPER_UNAVAILABLE/);
  });

  it('reconnect: a status that is still not connected is reported as a failure, without reloading', async () => {
    const fake = createFakeApi({ reconnect: () => ok(status({ state: 'stopped', message: 'could not be started' })) });
    const store = createAppStore(fake.api);
    await store.getState().reconnect();
    expect(store.getState().helper.state).toBe('stopped');
    expect(store.getState().notice?.text).toBe('Reconnect failed: could not be started');
    expect(fake.calls.map((c) => c.method)).toEqual(['reconnect']);
  });

  it('ignores a second reconnect while one runs', async () => {
    let release: () => void = () => {};
    const fake = createFakeApi({
      reconnect: () =>
        new Promise((resolve) => {
          release = () => resolve(ok(status({ state: 'stopped' })));
        }),
    });
    const store = createAppStore(fake.api);
    const first = store.getState().reconnect();
    await store.getState().reconnect();
    release();
    await first;
    expect(fake.calls.filter((c) => c.method === 'reconnect')).toHaveLength(1);
  });
});

describe('the status line is never stale', () => {
  it('a notice is cleared when another screen opens, kept on the same screen', () => {
    const store = createAppStore(createFakeApi().api);
    store.getState().setNotice({ kind: 'info', text: 'Snapshot s1 created.' });
    store.getState().setScreen('snapshots');
    expect(store.getState().notice).toBeNull();
    store.getState().setNotice({ kind: 'error', text: 'EBUSY: busy' });
    store.getState().setScreen('snapshots');
    expect(store.getState().notice?.text).toBe('EBUSY: busy');
    store.getState().openScreen('storage');
    expect(store.getState().notice).toBeNull();
  });
});
