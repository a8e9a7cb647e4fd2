import { describe, expect, it } from 'vitest';
import { err, ok } from '../../../app/shared/result.js';
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
    });
    const store = createAppStore(fake.api, { now: () => 1234 });
    store.getState().setSelectedDevices(['a', 'b']);
    store.getState().allocate('/var/tmp', 256 * MiB);
    expect(await store.getState().createSnapshot()).toBeNull();
    expect(fake.calls[0]).toEqual({
      method: 'snapshotCreate',
      params: { devices: ['a', 'b'], storagePath: '/var/tmp/blksnap-diff-1234.img', limitBytes: 256 * MiB },
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
});
