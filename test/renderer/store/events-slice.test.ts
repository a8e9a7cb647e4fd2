import { describe, expect, it } from 'vitest';
import { err, ok } from '../../../app/shared/result.js';
import type { SnapshotEventEntry } from '../../../app/shared/types.js';
import { createAppStore } from '../../../renderer/src/store/app-store.js';
import { MAX_EVENTS, alertText } from '../../../renderer/src/store/events-slice.js';
import { wireEvents } from '../../../renderer/src/store/wire-events.js';
import { createFakeApi } from '../fake-api.js';

describe('events slice and subscriptions', () => {
  it('collects events from the stream and raises an alert for corrupted and no-space', () => {
    const fake = createFakeApi({ listSnapshots: () => ok([]) });
    const store = createAppStore(fake.api);
    const off = wireEvents(fake.api, store);
    fake.emit('onSnapshotEvent', { code: 'low_free_space', snapshotId: 's1', timeMs: 1, requestedSectors: 2048 });
    expect(store.getState().events).toHaveLength(1);
    expect(store.getState().alert).toBeNull();
    fake.emit('onSnapshotEvent', {
      code: 'corrupted',
      snapshotId: 's1',
      timeMs: 2,
      device: 'disk1',
      devMajor: 259,
      devMinor: 0,
      errCode: -28,
    });
    expect(store.getState().alert?.text).toBe('Snapshot s1: the image of disk1 is corrupted (ENOSPC).');
    store.getState().dismissAlert();
    expect(store.getState().alert).toBeNull();
    fake.emit('onSnapshotEvent', { code: 'no_space', snapshotId: 's2', timeMs: 3, requestedSectors: 8 });
    expect(store.getState().alert?.text).toMatch(/full/);
    expect(store.getState().events.map((e) => e.seq)).toEqual([1, 2, 3]);
    off();
    expect(fake.listenerCount('onSnapshotEvent')).toBe(0);
    expect(fake.listenerCount('onHelperState')).toBe(0);
    expect(fake.listenerCount('onWorkloadProgress')).toBe(0);
  });

  it('keeps at most MAX_EVENTS, dropping the oldest', () => {
    const store = createAppStore(createFakeApi().api);
    for (let i = 0; i < MAX_EVENTS + 5; i++) {
      store.getState().addEvent({ code: 'low_free_space', snapshotId: 's', timeMs: i, requestedSectors: 1 });
    }
    const events = store.getState().events;
    expect(events).toHaveLength(MAX_EVENTS);
    expect(events[0]?.timeMs).toBe(5);
  });

  it('alertText is null for low free space', () => {
    expect(alertText({ code: 'low_free_space', snapshotId: 's', timeMs: 0, requestedSectors: 1 })).toBeNull();
  });

  it('helper state: stored, and a reconnect refreshes status, devices and snapshots', async () => {
    const fake = createFakeApi({
      getStatus: () =>
        ok({ driver: 'embedded', driverVersion: null, appVersion: '0.1.0', protocolVersion: 1, capabilities: [], helper: { state: 'connected' } }),
      listDevices: () => ok([]),
      listSnapshots: () => ok([]),
    });
    const store = createAppStore(fake.api);
    wireEvents(fake.api, store);
    fake.emit('onHelperState', { state: 'lost', message: 'exited' });
    expect(store.getState().helper).toEqual({ state: 'lost', message: 'exited' });
    fake.emit('onHelperState', { state: 'connected' });
    await new Promise((r) => setTimeout(r, 0));
    expect(fake.calls.map((c) => c.method).sort()).toEqual(['getStatus', 'listDevices', 'listEventHistory', 'listSnapshots']);
    expect(store.getState().status?.driver).toBe('embedded');
  });

  it('workload progress events are rounded into the store', () => {
    const fake = createFakeApi();
    const store = createAppStore(fake.api);
    wireEvents(fake.api, store);
    fake.emit('onWorkloadProgress', {
      device: 'd',
      running: true,
      pattern: 'sequential',
      rateMiBps: 2,
      actualMiBps: 1.94,
      bytesWritten: 3 * 1024 * 1024 + 7,
      writes: 3,
      elapsedMs: 1500,
    });
    expect(store.getState().workloads['d']).toMatchObject({ writtenMiB: 3, actualMiBps: 1.9, elapsedS: 1 });
  });

  describe('the helper\'s event history', () => {
    const corruption: SnapshotEventEntry = { code: 'corrupted', snapshotId: 'gone', timeMs: 100, device: 'disk1', devMajor: 259, devMinor: 0, errCode: -28 };
    const low = (snapshotId: string, timeMs: number): SnapshotEventEntry => ({ code: 'low_free_space', snapshotId, timeMs, requestedSectors: 2048 });

    it('loads the kept events of an ended snapshot, and an event seen live and kept appears once', async () => {
      const fake = createFakeApi({
        listEventHistory: () =>
          ok([
            { snapshotId: 'held', name: null, endedMs: null, dropped: 0, events: [low('held', 300)] },
            { snapshotId: 'gone', name: 'nightly', endedMs: 200, dropped: 4, events: [corruption] },
          ]),
      });
      const store = createAppStore(fake.api);
      store.getState().addEvent(low('held', 300));
      await store.getState().loadEventHistory();
      expect(store.getState().events.map((e) => [e.snapshotId, e.code, e.timeMs])).toEqual([
        ['gone', 'corrupted', 100],
        ['held', 'low_free_space', 300],
      ]);
      expect(store.getState().histories).toEqual({ held: { name: null, endedMs: null, dropped: 0 }, gone: { name: 'nightly', endedMs: 200, dropped: 4 } });
      // loading again (a reconnect) adds nothing twice
      await store.getState().loadEventHistory();
      expect(store.getState().events).toHaveLength(2);
      // a kept corruption is history, not news: no alert on load
      expect(store.getState().alert).toBeNull();
    });

    it('keeps the page\'s events when the helper cannot be asked', async () => {
      const store = createAppStore(createFakeApi({ listEventHistory: () => err('HELPER_UNAVAILABLE', 'The helper is not running.') }).api);
      store.getState().addEvent(low('s', 1));
      await store.getState().loadEventHistory();
      expect(store.getState().events).toHaveLength(1);
    });

    it('dismisses a snapshot\'s events in the helper; one the helper no longer has is forgotten too; another failure says so and keeps them', async () => {
      const fake = createFakeApi({ dismissEventHistory: () => ok(null) });
      const store = createAppStore(fake.api);
      store.getState().addEvent(corruption);
      store.getState().addEvent(low('other', 150));
      await store.getState().dismissEvents('gone');
      expect(fake.paramsOf('dismissEventHistory')).toEqual([{ snapshotId: 'gone' }]);
      expect(store.getState().events.map((e) => e.snapshotId)).toEqual(['other']);

      fake.handlers.dismissEventHistory = () => err('ESRCH', 'no event history for snapshot other');
      await store.getState().dismissEvents('other');
      expect(store.getState().events).toEqual([]);

      store.getState().addEvent(low('third', 1));
      fake.handlers.dismissEventHistory = () => err('EACCES', 'cannot write events.json');
      await store.getState().dismissEvents('third');
      expect(store.getState().events).toHaveLength(1);
      expect(store.getState().notice).toEqual({ kind: 'error', text: 'Dismissing the events of snapshot third failed: EACCES: cannot write events.json' });
    });
  });
});
