/**
 * KernelDriver over the simulated module (FakeIoctlLayer): every command of the
 * BlksnapDriver interface, the errno each failure carries, and the byte layouts
 * (the fake decodes the request structs and follows pointer fields itself).
 */
import { existsSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlksnapError } from '../../../engine/abi/errno.js';
import { BLKFILTER_CTL_BLKSNAP, BLKSNAP_EVENT_CODE, LAYOUT, encodeBlkfilterName } from '../../../engine/kernel/abi-structs.js';
import { FakeIoctlLayer } from './fake-ioctl-layer.js';
import {
  BLKFILTER_CTL,
  BLKFILTER_DETACH,
  IOCTL_BLKSNAP_SNAPSHOT_COLLECT,
  IOCTL_BLKSNAP_SNAPSHOT_CREATE,
} from '../../../engine/kernel/ioctl-numbers.js';
import { KernelDriver } from '../../../engine/kernel/kernel-driver.js';

const MiB = 1024 * 1024;
const SDB = '/dev/fake-sdb';
const SDC = '/dev/fake-sdc';

async function errnoOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as BlksnapError).errno ?? String(err);
  }
  return 'resolved';
}

let dir: string;
let fake: FakeIoctlLayer;
let driver: KernelDriver;

function makeDriver(layer: FakeIoctlLayer): KernelDriver {
  return new KernelDriver({ layer, resolveDevice: (mj, mn) => (mj === 8 && mn === 16 ? SDB : `${mj}:${mn}`) });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kdrv-'));
  fake = new FakeIoctlLayer();
  fake.addDevice({ path: SDB, capacity: 64 * MiB, major: 8, minor: 16 });
  fake.addDevice({ path: SDC, capacity: 10 * MiB + 512, major: 8, minor: 32 });
  driver = makeDriver(fake);
});

afterEach(async () => {
  await driver.close();
  expect(fake.openCount).toBe(0);
  expect(fake.liveAllocations).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

describe('KernelDriver: control commands', () => {
  it('version() reads struct blksnap_version', async () => {
    expect(driver.kind).toBe('kernel');
    expect(await driver.version()).toEqual({ major: 2, minor: 0, revision: 0, build: 0 });
  });

  it('a missing /dev/blksnap-control gives ENOENT saying the module is not loaded', async () => {
    const absent = new KernelDriver({ layer: new FakeIoctlLayer({ moduleLoaded: false }) });
    await expect(absent.version()).rejects.toThrow(/ENOENT: .*blksnap-control.*module is not loaded/);
  });

  it('snapshotCreate makes the storage file (0600), passes fd + limit, and destroy removes it', async () => {
    const path = join(dir, 'diff1');
    const id = await driver.snapshotCreate({ diffStoragePath: path, limitSectors: 4096 });
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(fake.calls.filter((c) => c.request === IOCTL_BLKSNAP_SNAPSHOT_CREATE)).toHaveLength(1);
    expect(await driver.snapshotCollect()).toEqual([id]);
    expect(await driver.storageInfo(id)).toEqual({
      snapshotId: id,
      path,
      limitSectors: 4096,
      allocatedSectors: 0,
      usedSectors: null,
    });
    await driver.snapshotDestroy(id);
    expect(existsSync(path)).toBe(false);
    expect(await driver.snapshotCollect()).toEqual([]);
    expect(await errnoOf(driver.snapshotDestroy(id))).toBe('ENODEV');
    expect(await errnoOf(driver.storageInfo(id))).toBe('ESRCH');
  });

  it('never reuses an existing file or follows a symlink; bad limits are EINVAL', async () => {
    const existing = join(dir, 'existing');
    writeFileSync(existing, 'keep me');
    expect(await errnoOf(driver.snapshotCreate({ diffStoragePath: existing, limitSectors: 8 }))).toBe('EEXIST');
    expect(readFileSync(existing, 'utf8')).toBe('keep me');
    const link = join(dir, 'link');
    symlinkSync(join(dir, 'target'), link);
    expect(await errnoOf(driver.snapshotCreate({ diffStoragePath: link, limitSectors: 8 }))).toBe('EEXIST');
    expect(existsSync(join(dir, 'target'))).toBe(false);
    expect(await errnoOf(driver.snapshotCreate({ diffStoragePath: join(dir, 'x'), limitSectors: 0 }))).toBe('EINVAL');
    expect(await errnoOf(driver.snapshotCreate({ diffStoragePath: join(dir, 'x'), limitSectors: 1.5 }))).toBe('EINVAL');
    expect(existsSync(join(dir, 'x'))).toBe(false);
  });

  it('snapshotCollect uses the two-call pattern (one call when there are none)', async () => {
    const before = fake.calls.length;
    expect(await driver.snapshotCollect()).toEqual([]);
    expect(fake.calls.length - before).toBe(1);
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await driver.snapshotCreate({ diffStoragePath: join(dir, `d${i}`), limitSectors: 64 }));
    const start = fake.calls.length;
    expect(await driver.snapshotCollect()).toEqual(ids);
    const collects = fake.calls.slice(start).filter((c) => c.request === IOCTL_BLKSNAP_SNAPSHOT_COLLECT);
    expect(collects).toHaveLength(2);
    for (const id of ids) await driver.snapshotDestroy(id);
  });

  it('snapshotCollect sizes again on -ENODATA when a snapshot appears between the calls', async () => {
    class RacingFake extends FakeIoctlLayer {
      hook: (() => Promise<unknown>) | undefined;
      override async ioctl(fd: number, request: number, arg: Buffer): Promise<number> {
        const result = await super.ioctl(fd, request, arg);
        const hook = this.hook;
        if (request === IOCTL_BLKSNAP_SNAPSHOT_COLLECT && hook) {
          this.hook = undefined;
          await hook();
        }
        return result;
      }
    }
    const racing = new RacingFake();
    const d = makeDriver(racing);
    const first = await d.snapshotCreate({ diffStoragePath: join(dir, 'r1'), limitSectors: 64 });
    let second = '';
    racing.hook = async () => {
      second = await d.snapshotCreate({ diffStoragePath: join(dir, 'r2'), limitSectors: 64 });
    };
    expect(await d.snapshotCollect()).toEqual([first, second]);
    expect(racing.calls.filter((c) => c.request === IOCTL_BLKSNAP_SNAPSHOT_COLLECT)).toHaveLength(4);
    await d.snapshotDestroy(first);
    await d.snapshotDestroy(second);
    await d.close();
    expect(racing.openCount).toBe(0);
  });

  it('take: ESRCH for an unknown id, ENODEV without devices, EALREADY twice', async () => {
    expect(await errnoOf(driver.snapshotTake('00000000-0000-0000-0000-000000000001'))).toBe('ESRCH');
    const id = await driver.snapshotCreate({ diffStoragePath: join(dir, 'd'), limitSectors: 64 });
    expect(await errnoOf(driver.snapshotTake(id))).toBe('ENODEV');
    await driver.snapshotAdd(id, SDB);
    await driver.snapshotTake(id);
    expect(await errnoOf(driver.snapshotTake(id))).toBe('EALREADY');
    await driver.snapshotDestroy(id);
    expect(await errnoOf(driver.snapshotTake('not-a-uuid'))).toBe('EINVAL');
  });
});

describe('KernelDriver: filter commands', () => {
  it('attach / detach with the errno of blk-filter.c', async () => {
    expect(await errnoOf(driver.detach(SDB))).toBe('ENOENT');
    expect(await errnoOf(driver.cbtInfo(SDB))).toBe('ENOENT');
    await driver.attach(SDB);
    expect(await errnoOf(driver.attach(SDB))).toBe('EALREADY');
    await driver.detach(SDB);
    expect(await errnoOf(driver.cbtInfo(SDB))).toBe('ENOENT');
    expect(await errnoOf(driver.attach('/dev/does-not-exist-blksnap'))).toBe('ENOENT');
  });

  it('cbtInfo: capacity, 64 KiB tracking blocks, count rounded up, generation id', async () => {
    await driver.attach(SDC);
    const info = await driver.cbtInfo(SDC);
    expect(info.deviceCapacity).toBe(10 * MiB + 512);
    expect(info.blockSize).toBe(65536);
    expect(info.blockCount).toBe(161);
    expect(info.changesNumber).toBe(0);
    expect(info.generationId).toMatch(/^[0-9a-f]{8}-/);
  });

  it('a full cycle: writes, snapshot add/take, image name, CBT map, dirty ranges, destroy, detach', async () => {
    await driver.attach(SDB);
    fake.write(SDB, 0, 1); // block 0
    fake.write(SDB, 128 * 5, 300); // blocks 5..7 (128 sectors per block)
    const id = await driver.snapshotCreate({ diffStoragePath: join(dir, 'diff'), limitSectors: 1 << 20 });
    await driver.snapshotAdd(id, SDB);
    expect(await driver.snapshotInfo(SDB)).toEqual({ errorCode: 0, image: '' });
    await driver.snapshotTake(id);
    const info = await driver.snapshotInfo(SDB);
    // snapimage.c (seed 001): "%s_%d:%d" of BLKSNAP_IMAGE_NAME and the original device's major:minor.
    expect(info).toEqual({ errorCode: 0, image: 'blksnap-image_8:16' });
    expect(driver.imageDevicePath(info)).toBe('/dev/blksnap-image_8:16');
    const cbt = await driver.cbtInfo(SDB);
    expect(cbt.changesNumber).toBe(1);
    expect(cbt.blockCount).toBe(1024);
    const map = await driver.cbtMap(SDB, 0, 16);
    expect([...map]).toEqual([1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Writes after the take go to the active table only.
    fake.write(SDB, 128 * 3, 1);
    expect((await driver.cbtMap(SDB, 3, 1))[0]).toBe(0);
    // cbtDirty marks both tables, one range per command.
    const before = fake.calls.length;
    await driver.cbtDirty(SDB, [
      { offset: 128 * 10, count: 1 },
      { offset: 128 * 20, count: 256 },
    ]);
    const dirtyCalls = fake.calls.slice(before).filter((c) => c.request === BLKFILTER_CTL && c.cmd === BLKFILTER_CTL_BLKSNAP.cbtdirty);
    expect(dirtyCalls).toHaveLength(2);
    expect([...(await driver.cbtMap(SDB, 10, 12))]).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    expect(await errnoOf(driver.cbtDirty(SDB, [{ offset: 128 * 1024, count: 1 }]))).toBe('EINVAL');
    expect(await errnoOf(driver.cbtDirty(SDB, [{ offset: 0, count: 0 }]))).toBe('EINVAL');
    // In a snapshot: detach is refused.
    expect(await errnoOf(driver.detach(SDB))).toBe('EBUSY');
    await driver.snapshotDestroy(id);
    expect(await driver.snapshotInfo(SDB)).toEqual({ errorCode: 0, image: '' });
    // Tracking goes on after destroy; the next snapshot's map shows the later write.
    const id2 = await driver.snapshotCreate({ diffStoragePath: join(dir, 'diff2'), limitSectors: 1 << 20 });
    await driver.snapshotAdd(id2, SDB);
    await driver.snapshotTake(id2);
    expect((await driver.cbtInfo(SDB)).changesNumber).toBe(2);
    expect((await driver.snapshotInfo(SDB)).image).toBe('blksnap-image_8:16');
    expect([...(await driver.cbtMap(SDB, 0, 4))]).toEqual([1, 0, 0, 2]);
    await driver.snapshotDestroy(id2);
    await driver.detach(SDB);
  });

  it('cbtMap returns fewer bytes at the end, none at the end, EINVAL past it', async () => {
    await driver.attach(SDC);
    expect((await driver.cbtMap(SDC, 150, 100)).length).toBe(11);
    expect((await driver.cbtMap(SDC, 161, 10)).length).toBe(0);
    expect(await errnoOf(driver.cbtMap(SDC, 162, 1))).toBe('EINVAL');
    expect(await errnoOf(driver.cbtMap(SDC, -1, 1))).toBe('EINVAL');
  });

  it('cbtMap follows the count of bytes the module reports read (v6: cbtmap returns it)', async () => {
    // A module that copies at most 5 bytes per command: the driver must go on from
    // where each command stopped instead of returning the unread (zero) bytes.
    const short = new FakeIoctlLayer({ maxCbtMapRead: 5 });
    short.addDevice({ path: SDB, capacity: 64 * MiB, major: 8, minor: 16 });
    const d = makeDriver(short);
    await d.attach(SDB);
    short.write(SDB, 128 * 7, 1);
    short.write(SDB, 128 * 11, 1);
    const id = await d.snapshotCreate({ diffStoragePath: join(dir, 'short'), limitSectors: 64 });
    await d.snapshotAdd(id, SDB);
    await d.snapshotTake(id);
    const before = short.calls.length;
    expect([...(await d.cbtMap(SDB, 2, 12))]).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0]);
    const reads = short.calls.slice(before).filter((c) => c.request === BLKFILTER_CTL && c.cmd === BLKFILTER_CTL_BLKSNAP.cbtmap);
    expect(reads).toHaveLength(3);
    await d.snapshotDestroy(id);
    await d.detach(SDB);
    await d.close();
    expect(short.openCount).toBe(0);
    expect(short.liveAllocations).toBe(0);
  });

  it('snapshotAdd attaches when needed; ESRCH, EALREADY and EBUSY as the module', async () => {
    const a = await driver.snapshotCreate({ diffStoragePath: join(dir, 'a'), limitSectors: 64 });
    const b = await driver.snapshotCreate({ diffStoragePath: join(dir, 'b'), limitSectors: 64 });
    await driver.snapshotAdd(a, SDB); // not attached before
    expect((await driver.cbtInfo(SDB)).blockCount).toBe(1024);
    expect(await errnoOf(driver.snapshotAdd(a, SDB))).toBe('EALREADY');
    expect(await errnoOf(driver.snapshotAdd(b, SDB))).toBe('EBUSY');
    expect(await errnoOf(driver.snapshotAdd('00000000-0000-0000-0000-00000000000f', SDC))).toBe('ESRCH');
    await driver.snapshotAdd(a, SDC);
    await driver.snapshotTake(a);
    expect((await driver.snapshotInfo(SDB)).image).not.toBe((await driver.snapshotInfo(SDC)).image);
    await driver.snapshotDestroy(a);
    await driver.snapshotDestroy(b);
  });

  it('detach is EBUSY while the device is in a snapshot, though blkfilter_ioctl_detach itself never refuses', async () => {
    // The module side (seed 001 blk-filter.c): BLKFILTER_DETACH detaches whatever the snapshot state.
    await driver.attach(SDC);
    const id0 = await driver.snapshotCreate({ diffStoragePath: join(dir, 'raw'), limitSectors: 64 });
    await driver.snapshotAdd(id0, SDC);
    await driver.snapshotTake(id0);
    const fd = await fake.open(SDC, 0);
    const mem = fake.alloc(LAYOUT.blkfilter_name.size);
    mem.buffer.set(encodeBlkfilterName('blksnap'));
    await expect(fake.ioctl(fd, BLKFILTER_DETACH, mem.buffer)).resolves.toBe(0);
    fake.free(mem);
    await fake.close(fd);
    await driver.snapshotDestroy(id0);

    // The driver keeps the BlksnapDriver contract: added (not yet taken) and taken are both refused.
    const id = await driver.snapshotCreate({ diffStoragePath: join(dir, 'busy'), limitSectors: 64 });
    await driver.snapshotAdd(id, SDB);
    expect(await errnoOf(driver.detach(SDB))).toBe('EBUSY');
    await driver.snapshotTake(id);
    expect(await errnoOf(driver.detach(SDB))).toBe('EBUSY');
    // Another driver (another process) knows nothing of the add, but sees the taken image.
    const other = makeDriver(fake);
    expect(await errnoOf(other.detach(SDB))).toBe('EBUSY');
    await other.close();
    expect((await driver.cbtInfo(SDB)).changesNumber).toBe(1); // still tracked
    await driver.snapshotDestroy(id);
    await driver.detach(SDB);
    expect(await errnoOf(driver.detach(SDB))).toBe('ENOENT');
  });

  it('detach is allowed again once the snapshot was destroyed by another process', async () => {
    const id = await driver.snapshotCreate({ diffStoragePath: join(dir, 'elsewhere'), limitSectors: 64 });
    await driver.snapshotAdd(id, SDC);
    const other = makeDriver(fake);
    await other.snapshotDestroy(id);
    await other.close();
    await driver.detach(SDC);
    expect(await errnoOf(driver.cbtInfo(SDC))).toBe('ENOENT');
  });

  it('a regular file is not a block device: ENOTTY', async () => {
    const file = join(dir, 'plain');
    writeFileSync(file, '');
    expect(await errnoOf(driver.attach(file))).toBe('ENOTTY');
  });
});

describe('KernelDriver: events', () => {
  it('timeout -> null (-ENOENT); unknown id -> ESRCH', async () => {
    const id = await driver.snapshotCreate({ diffStoragePath: join(dir, 'e'), limitSectors: 64 });
    const t0 = Date.now();
    expect(await driver.snapshotWaitEvent(id, 30)).toBeNull();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(25);
    expect(await errnoOf(driver.snapshotWaitEvent('00000000-0000-0000-0000-0000000000aa', 10))).toBe('ESRCH');
    await driver.snapshotDestroy(id);
  });

  it('overflow: no_space with requested sectors, then corrupted with the device and -ENOSPC', async () => {
    const id = await driver.snapshotCreate({ diffStoragePath: join(dir, 'o'), limitSectors: 64 });
    await driver.snapshotAdd(id, SDB);
    await driver.snapshotTake(id);
    const waiting = driver.snapshotWaitEvent(id, 5000);
    setTimeout(() => fake.overflow(id, 2097152), 20);
    const first = await waiting;
    expect(first).toMatchObject({ code: 'no_space', snapshotId: id, requestedSectors: 2097152 });
    expect(Math.abs((first?.timeMs ?? 0) - Date.now())).toBeLessThan(2000);
    const second = await driver.snapshotWaitEvent(id, 100);
    expect(second).toMatchObject({ code: 'corrupted', device: SDB, devMajor: 8, devMinor: 16, errCode: -28 });
    expect(await driver.snapshotWaitEvent(id, 10)).toBeNull();
    expect((await driver.snapshotInfo(SDB)).errorCode).toBe(-28);
    await driver.snapshotDestroy(id);
  });

  it('an unknown event code is reported as EOPNOTSUPP', async () => {
    const id = await driver.snapshotCreate({ diffStoragePath: join(dir, 'u'), limitSectors: 64 });
    fake.queueEvent(id, 7, new Uint8Array(8));
    expect(await errnoOf(driver.snapshotWaitEvent(id, 100))).toBe('EOPNOTSUPP');
    fake.queueEvent(id, BLKSNAP_EVENT_CODE.no_space, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]));
    expect(await driver.snapshotWaitEvent(id, 100)).toMatchObject({ code: 'no_space', requestedSectors: 1 });
    await driver.snapshotDestroy(id);
  });
});
