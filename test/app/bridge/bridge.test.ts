import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeBase64 } from '../../../app/shared/base64.js';
import type { HelperState, WorkloadProgress } from '../../../app/shared/types.js';
import { spawnHelper, stopHelper } from './helper-fixture.js';
import { afterThisTest, cleanUpBridges, setupBridge, value } from './bridge-fixture.js';

cleanUpBridges();

describe('bridge over a real helper', () => {
  it('starts a helper when none answers, then serves the whole device/snapshot/CBT flow', async () => {
    const { bridge, dirs } = setupBridge('fixture');
    const states: HelperState[] = [];
    bridge.api.onHelperState((s) => states.push(s));
    await bridge.start();
    expect(bridge.link.startedPid).toBeGreaterThan(0);
    const status = value(await bridge.api.getStatus());
    expect(status).toMatchObject({ driver: 'embedded', appVersion: '9.8.7', protocolVersion: 1, helper: { state: 'connected' } });
    expect(status.driverVersion?.major).toBeTypeOf('number');
    expect(status.capabilities).toContain('cbt-active-table');
    expect(states.map((s) => s.state)).toEqual(['connected']);

    const disk = value(await bridge.api.createLabDisk({ name: 'disk1', sizeBytes: 8 * 1024 * 1024 }));
    expect(disk).toMatchObject({ id: 'disk1', name: 'disk1', kind: 'engine', sizeBytes: 8 * 1024 * 1024, snapshotId: null, tracked: true });
    expect(disk.path).toBe(join(dirs.root, 'lab', 'disk1.img'));
    expect(existsSync(disk.path)).toBe(true);
    const devices = value(await bridge.api.listDevices());
    expect(devices.map((d) => d.id)).toContain('disk1');

    const info = value(await bridge.api.cbtInfo({ device: 'disk1' }));
    expect(info.device).toBe('disk1');
    expect(info.capacityBytes).toBe(8 * 1024 * 1024);
    expect(info.blockCount).toBeGreaterThan(0);
    const map = value(await bridge.api.cbtMap({ device: 'disk1' }));
    expect(map.encoding).toBe('base64');
    expect(map).toMatchObject({ table: 'snapshot', changesNumber: 0, activeNumber: 1 });
    expect(decodeBase64(map.data).length).toBe(info.blockCount);
    const active = value(await bridge.api.cbtMap({ device: 'disk1', table: 'active' }));
    expect(active).toMatchObject({ table: 'active', activeNumber: 1, blockCount: info.blockCount });
    expect(decodeBase64(active.data).length).toBe(info.blockCount);

    // the allocation is kept by the helper (its settings): another page reads it back
    expect(value(await bridge.api.getStorageAllocation())).toBeNull();
    expect(value(await bridge.api.setStorageAllocation({ directory: dirs.root, limitBytes: 3 * 1024 * 1024 + 7 }))).toEqual({ directory: dirs.root, limitBytes: 3 * 1024 * 1024 });
    expect(value(await bridge.api.getStorageAllocation())).toEqual({ directory: dirs.root, limitBytes: 3 * 1024 * 1024 });
    const storagePath = join(dirs.root, 'diff.store');
    const created = value(await bridge.api.snapshotCreate({ devices: ['disk1'], storagePath, limitBytes: 64 * 1024 * 1024 }));
    let snaps = value(await bridge.api.listSnapshots());
    expect(snaps).toHaveLength(1);
    expect(snaps[0]).toMatchObject({ id: created.snapshotId, state: 'created', writableImages: false });
    expect(snaps[0]?.devices[0]).toMatchObject({ device: 'disk1', errorCode: 0, errorName: '' });
    value(await bridge.api.snapshotTake({ snapshotId: created.snapshotId }));
    snaps = value(await bridge.api.listSnapshots());
    expect(snaps[0]?.state).toBe('taken');
    expect(snaps[0]?.devices[0]?.image).toMatch(/^blksnap-image/);
    expect(snaps[0]?.storage?.limitBytes).toBe(64 * 1024 * 1024);
    // grow: the limit the listing shows rises by the bytes asked (rounded down to sectors)
    expect(value(await bridge.api.getStatus()).capabilities).toContain('storage-grow');
    expect(value(await bridge.api.getStatus()).chunkBytes).toBe(256 * 1024); // the default chunk_minimum_shift 18
    value(await bridge.api.snapshotGrowStorage({ snapshotId: created.snapshotId, addBytes: 32 * 1024 * 1024 + 100 }));
    expect(value(await bridge.api.listSnapshots())[0]?.storage?.limitBytes).toBe(96 * 1024 * 1024);

    const busy = await bridge.api.removeImage({ device: 'disk1' });
    expect(busy.ok).toBe(false);
    if (!busy.ok) expect(busy.error.code).toBe('EBUSY');

    value(await bridge.api.snapshotDestroy({ snapshotId: created.snapshotId }));
    expect(value(await bridge.api.listSnapshots())).toEqual([]);
    // asked for, the images are writable, and the listing says so
    const before = Date.now();
    const writable = value(await bridge.api.snapshotCreate({ devices: ['disk1'], storagePath: join(dirs.root, 'diff2.store'), limitBytes: 64 * 1024 * 1024, writableImages: true, name: 'nightly' }));
    const [named] = value(await bridge.api.listSnapshots());
    expect(named).toMatchObject({ id: writable.snapshotId, name: 'nightly', takenMs: null });
    expect(named?.createdMs).toBeGreaterThanOrEqual(before);
    expect(value(await bridge.api.listSnapshots())).toEqual([expect.objectContaining({ id: writable.snapshotId, writableImages: true })]);
    value(await bridge.api.snapshotDestroy({ snapshotId: writable.snapshotId }));
    // the storage form reaches the helper: an unnamed file in a directory leaves nothing there
    const formDir = join(dirs.root, 'unnamed');
    mkdirSync(formDir);
    const unnamed = value(await bridge.api.snapshotCreate({ devices: ['disk1'], storagePath: formDir, storageForm: 'directory', limitBytes: 64 * 1024 * 1024 }));
    expect(value(await bridge.api.listSnapshots())[0]?.storage?.path).toBe(formDir);
    expect(readdirSync(formDir)).toEqual([]);
    value(await bridge.api.snapshotDestroy({ snapshotId: unnamed.snapshotId }));
    value(await bridge.api.removeImage({ device: 'disk1' }));
    expect(value(await bridge.api.listDevices()).map((d) => d.id)).not.toContain('disk1');
  });

  it('the helper keeps a snapshot\'s events, a corruption included, after it is destroyed, until they are dismissed', async () => {
    const { bridge, dirs } = setupBridge('fixture');
    await bridge.start();
    value(await bridge.api.createLabDisk({ name: 'small', sizeBytes: 16 * 1024 * 1024 }));
    expect(value(await bridge.api.listEventHistory())).toEqual([]);
    const corrupted: string[] = [];
    bridge.api.onSnapshotEvent((e) => {
      if (e.code === 'corrupted') corrupted.push(e.snapshotId);
    });
    const { snapshotId } = value(await bridge.api.snapshotCreate({ devices: ['small'], storagePath: join(dirs.root, 'tiny.store'), limitBytes: 1024 * 1024, name: 'tiny' }));
    value(await bridge.api.snapshotTake({ snapshotId }));
    // sequential first writes at 64 MiB/s overflow a 1 MiB storage within a second
    value(await bridge.api.workloadStart({ device: 'small', rateMiBps: 64, pattern: 'sequential' }));
    for (let i = 0; i < 200 && corrupted.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    await bridge.api.workloadStop({ device: 'small' });
    expect(corrupted).toEqual([snapshotId]);
    value(await bridge.api.snapshotDestroy({ snapshotId }));
    const [kept] = value(await bridge.api.listEventHistory());
    expect(kept).toMatchObject({ snapshotId, name: 'tiny', endedMs: expect.any(Number) as number });
    expect(kept?.events).toContainEqual(expect.objectContaining({ code: 'corrupted', device: 'small', errCode: -28 }));
    value(await bridge.api.dismissEventHistory({ snapshotId }));
    expect(value(await bridge.api.listEventHistory())).toEqual([]);
    const again = await bridge.api.dismissEventHistory({ snapshotId });
    expect(again.ok).toBe(false);
    if (!again.ok) expect(again.error.code).toBe('ESRCH');
  });

  it('maps helper errors to contract codes', async () => {
    const { bridge } = setupBridge('fixture');
    await bridge.start();
    const missing = await bridge.api.cbtInfo({ device: 'nope' });
    expect(missing.ok).toBe(false);
    if (!missing.ok) {
      expect(missing.error.code).toBe('ENOENT');
      expect(missing.error.message).toMatch(/\.$/);
    }
    const badId = await bridge.api.snapshotDestroy({ snapshotId: 'not-a-uuid' });
    expect(badId.ok).toBe(false);
    if (!badId.ok) expect(badId.error.code).toBe('EINVAL');
  });

  it('reports HELPER_UNAVAILABLE when no helper runs and none may be started', async () => {
    const { bridge } = setupBridge(null);
    await bridge.start();
    const result = await bridge.api.listDevices();
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.code).toBe('HELPER_UNAVAILABLE');
    const status = value(await bridge.api.getStatus());
    expect(status.helper.state).toBe('stopped');
    expect(status.driver).toBeNull();
  });

  it('explains a helper that exits at start (code and log tail)', async () => {
    const { bridge } = setupBridge(null, {
      launch: { command: process.execPath, args: ['-e', 'console.error("boom: no driver"); process.exit(3)'], env: {} },
    });
    await bridge.start();
    const result = await bridge.api.listDevices();
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.code).toBe('HELPER_UNAVAILABLE');
    }
    const status = value(await bridge.api.getStatus());
    expect(status.helper.message).toMatch(/exited with code 3 before it was ready: boom: no driver\.$/);
  });

  it('turns a helper that disappears into HELPER_LOST, and reconnect brings it back', async () => {
    const { bridge, dirs } = setupBridge(null);
    let helper = await spawnHelper(dirs);
    afterThisTest(() => stopHelper(helper));
    await bridge.start();
    expect(value(await bridge.api.listDevices())).toBeInstanceOf(Array);
    const states: HelperState[] = [];
    bridge.api.onHelperState((s) => states.push(s));
    await stopHelper(helper);
    for (let i = 0; i < 50 && states.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(states[0]?.state).toBe('lost');
    const lost = await bridge.api.listDevices();
    expect(lost.ok).toBe(false);
    if (!lost.ok) expect(lost.error.code).toBe('HELPER_LOST');

    helper = await spawnHelper(dirs);
    const status = value(await bridge.api.reconnect());
    expect(status.helper.state).toBe('connected');
    expect(value(await bridge.api.listDevices())).toBeInstanceOf(Array);
  });

  it('lists mounted filesystems with sizes', async () => {
    const { bridge } = setupBridge(null);
    const list = value(await bridge.api.listFilesystems());
    expect(list.length).toBeGreaterThan(0);
    for (const fs of list) {
      expect(fs.totalBytes).toBeGreaterThan(0);
      expect(fs.freeBytes).toBeLessThanOrEqual(fs.totalBytes);
      expect(fs.mountpoint.startsWith('/proc')).toBe(false);
    }
  });

  it('runs a write workload on a lab disk: progress events, EALREADY, stop, and the writes in the CBT map', async () => {
    const { bridge, dirs } = setupBridge('fixture');
    await bridge.start();
    value(await bridge.api.createLabDisk({ name: 'wl', sizeBytes: 16 * 1024 * 1024 }));
    const before = decodeBase64(value(await bridge.api.cbtMap({ device: 'wl' })).data);
    const progress: WorkloadProgress[] = [];
    bridge.api.onWorkloadProgress((p) => progress.push(p));
    value(await bridge.api.workloadStart({ device: 'wl', rateMiBps: 8, pattern: 'random' }));
    const again = await bridge.api.workloadStart({ device: 'wl', rateMiBps: 8, pattern: 'random' });
    expect(again.ok ? null : again.error.code).toBe('EALREADY');
    for (let i = 0; i < 50 && !progress.some((p) => p.running && p.writes > 0); i++) await new Promise((r) => setTimeout(r, 50));
    value(await bridge.api.workloadStop({ device: 'wl' }));
    for (let i = 0; i < 50 && !progress.some((p) => !p.running); i++) await new Promise((r) => setTimeout(r, 20));
    const last = progress[progress.length - 1];
    expect(last).toMatchObject({ device: 'wl', running: false, pattern: 'random', rateMiBps: 8 });
    expect(last?.bytesWritten).toBe((last?.writes ?? 0) * 64 * 1024);
    expect(last?.writes).toBeGreaterThan(0);
    const stopAgain = await bridge.api.workloadStop({ device: 'wl' });
    expect(stopAgain.ok ? null : stopAgain.error.code).toBe('ESRCH');
    // the active table shows the writes at once, with the active number
    const live = value(await bridge.api.cbtMap({ device: 'wl', table: 'active' }));
    expect(live).toMatchObject({ table: 'active', changesNumber: 0, activeNumber: 1 });
    const liveBytes = decodeBase64(live.data);
    expect(liveBytes.some((b) => b === 1)).toBe(true);
    expect(liveBytes.every((b) => b === 0 || b === 1)).toBe(true);
    // the map a reader sees switches at snapshot take (cbt_map_switch): take one to see the writes
    const snap = value(await bridge.api.snapshotCreate({ devices: ['wl'], storagePath: join(dirs.root, 'wl.diff'), limitBytes: 32 * 1024 * 1024 }));
    value(await bridge.api.snapshotTake(snap));
    const afterEntry = value(await bridge.api.cbtMap({ device: 'wl' }));
    expect(afterEntry).toMatchObject({ table: 'snapshot', changesNumber: 1, activeNumber: 2 });
    const after = decodeBase64(afterEntry.data);
    expect(before.every((b) => b === 0)).toBe(true);
    expect(after.some((b) => b !== 0)).toBe(true);
    // the snapshot table now holds what the active table had before the take
    expect(Buffer.compare(Buffer.from(after), Buffer.from(liveBytes))).toBe(0);
    value(await bridge.api.snapshotDestroy(snap));
  });
});
