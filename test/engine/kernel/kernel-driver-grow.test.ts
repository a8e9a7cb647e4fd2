/**
 * Growable difference storage on VAL-7.0 (KernelDriver against the fake module): a new
 * file is reserved, mapped with FIEMAP and handed over as sector ranges in append mode;
 * storageGrowFile appends more files; destroy releases them; every refusal says why.
 */
import { constants, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { reserveFileSpace } from '../../../engine/core/fallocate.js';
import { DIALECTS } from '../../../engine/kernel/dialects.js';
import type { DialectName } from '../../../engine/kernel/dialects.js';
import { FIEMAP_EXTENT } from '../../../engine/kernel/fiemap.js';
import { KernelDriver } from '../../../engine/kernel/kernel-driver.js';
import { FakeIoctlLayer } from './fake-ioctl-layer.js';

const MiB = 1024 * 1024;
/** The fake block device the storage's file system is on. */
const STORE_DEV = '/dev/fake-store';
const SDB = '/dev/fake-sdb';
const LIMIT = (4 * MiB) / 512;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kgrow-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function setup(dialect: DialectName = 'val7', resolve = (): string => STORE_DEV): { fake: FakeIoctlLayer; driver: KernelDriver } {
  const fake = new FakeIoctlLayer({ dialect });
  fake.addDevice({ path: SDB, capacity: 64 * MiB, major: 8, minor: 16 });
  fake.addDevice({ path: STORE_DEV, capacity: 256 * MiB, major: 8, minor: 32 });
  const driver = new KernelDriver({ layer: fake, dialect: DIALECTS[dialect], resolveDevice: resolve, reserveSpace: reserveFileSpace });
  return { fake, driver };
}

/** A new, empty file the caller created (as caller-fs does), opened for the driver. */
async function newFile(fake: FakeIoctlLayer, name: string): Promise<{ path: string; fd: number }> {
  const path = join(dir, name);
  writeFileSync(path, Buffer.alloc(0), { mode: 0o600 });
  return { path, fd: await fake.open(path, constants.O_RDWR) };
}

/** The sector ranges the fake's default FIEMAP answer gives for the file at `path`. */
function rangesOf(path: string): { offset: number; count: number }[] {
  const st = statSync(path);
  return [{ offset: ((1 + (st.ino % 1000)) * MiB) / 512, count: st.size / 512 }];
}

async function createGrowable(fake: FakeIoctlLayer, driver: KernelDriver): Promise<{ id: string; path: string; fd: number }> {
  const f = await newFile(fake, 'diff');
  const id = await driver.snapshotCreate({ diffStoragePath: f.path, limitSectors: LIMIT, diffStorageFd: f.fd, growable: true });
  return { id, ...f };
}

describe('VAL-7.0 growable storage', () => {
  it('create reserves the new file to the limit and hands its sectors to the module in append mode', async () => {
    const { fake, driver } = setup();
    expect(driver.canGrowStorage).toBe(true);
    const { id, path, fd } = await createGrowable(fake, driver);
    expect(statSync(path).size).toBe(4 * MiB);
    // append mode: no storage path for the module, a ceiling for its limit, then the ranges
    expect(fake.storageOf(id).path).toBeNull();
    expect(fake.storageOf(id).appended).toEqual([{ devpath: STORE_DEV, ranges: rangesOf(path) }]);
    expect(fake.isImmutable(fd)).toBe(true);
    // the module's first request (min(diff_storage_minimum, the ceiling)) is the driver's
    // business: answered by an append of no ranges, which lets the module ask again, and not reported
    expect(await driver.snapshotWaitEvent(id, 50)).toBeNull();
    expect(fake.storageOf(id).appended.at(-1)).toEqual({ devpath: STORE_DEV, ranges: [] });
    // a corrupted event behind a request is reported
    await driver.snapshotAdd(id, SDB);
    fake.overflow(id, 512);
    expect(await driver.snapshotWaitEvent(id, 1000)).toMatchObject({ code: 'corrupted', errCode: -28 });
    expect(fake.storageOf(id).appended.filter((a) => a.ranges.length === 0)).toHaveLength(2);
    expect((await driver.storageInfo(id)).limitSectors).toBe(LIMIT);
    await driver.snapshotDestroy(id);
    await driver.close();
    expect(fake.openCount).toBe(0);
  });

  it('storageGrowFile appends a second file, raises the limit, and destroy clears the immutable flags and closes both', async () => {
    const { fake, driver } = setup();
    const { id, fd } = await createGrowable(fake, driver);
    const grow = await newFile(fake, 'diff.grow-1');
    await driver.storageGrowFile(id, grow.fd, grow.path, LIMIT);
    expect(statSync(grow.path).size).toBe(4 * MiB);
    expect(fake.storageOf(id).appended.at(-1)).toEqual({ devpath: STORE_DEV, ranges: rangesOf(grow.path) });
    expect(await driver.storageInfo(id)).toMatchObject({ limitSectors: 2 * LIMIT, allocatedSectors: 2 * LIMIT, usedSectors: null });
    expect(fake.isImmutable(grow.fd)).toBe(true);
    await driver.snapshotDestroy(id);
    // the fake's flags live on after the descriptors: reopen to look
    const again = [await fake.open(join(dir, 'diff'), constants.O_RDONLY), await fake.open(grow.path, constants.O_RDONLY)];
    expect(again.map((d) => fake.isImmutable(d))).toEqual([false, false]);
    for (const d of again) await fake.close(d);
    expect(fd).not.toBe(grow.fd);
    await driver.close();
    expect(fake.openCount).toBe(0);
  });

  it('releaseGone keeps the files of a snapshot the module still has, and lets go of them once another program destroyed it', async () => {
    const { fake, driver } = setup();
    const { id, fd } = await createGrowable(fake, driver);
    await expect(driver.releaseGone(id)).rejects.toThrow(/EBUSY: .*still exists/);
    expect(fake.isImmutable(fd)).toBe(true);
    const other = new KernelDriver({ layer: fake, dialect: DIALECTS.val7 });
    await other.snapshotDestroy(id);
    await other.close();
    expect(fake.isImmutable(fd)).toBe(true);
    await driver.releaseGone(id);
    await driver.close();
    expect(fake.openCount).toBe(0);
    const again = await fake.open(join(dir, 'diff'), constants.O_RDONLY);
    expect(fake.isImmutable(again)).toBe(false);
    await fake.close(again);
  });

  it('appendStorage with no ranges is sent (count 0), more than 4096 are refused before the module', async () => {
    const { fake, driver } = setup();
    const id = await driver.snapshotCreateAppendable(8192);
    await driver.appendStorage(id, SDB, []);
    expect(fake.storageOf(id).appended).toEqual([{ devpath: SDB, ranges: [] }]);
    const many = Array.from({ length: 4097 }, (_, i) => ({ offset: i * 8, count: 8 }));
    await expect(driver.appendStorage(id, SDB, many)).rejects.toThrow(/EINVAL: append_storage takes at most 4096 ranges, got 4097/);
    expect(fake.storageOf(id).appended).toHaveLength(1);
    await driver.snapshotDestroy(id);
    await driver.close();
    expect(fake.liveAllocations).toBe(0);
  });

  it('more than 4096 extents go in several append_storage calls', async () => {
    const { fake, driver } = setup();
    fake.fiemapAnswer = (size) =>
      Array.from({ length: size / 4096 }, (_, i) => ({ logical: i * 4096, physical: (2 * i + 1) * 4096, length: 4096, flags: i === size / 4096 - 1 ? FIEMAP_EXTENT.last : 0 }));
    const { id } = await createGrowable(fake, driver);
    const calls = fake.storageOf(id).appended;
    expect(calls.map((c) => c.ranges.length)).toEqual([1024]); // 4 MiB in 4 KiB extents
    const grow = await newFile(fake, 'g');
    await driver.storageGrowFile(id, grow.fd, grow.path, (20 * MiB) / 512);
    expect(fake.storageOf(id).appended.slice(1).map((c) => c.ranges.length)).toEqual([4096, 1024]);
    expect(fake.storageOf(id).appended[1]?.ranges[1]).toEqual({ offset: 24, count: 8 });
    await driver.snapshotDestroy(id);
    await driver.close();
  });

  it.each([
    ['shared extents (reflink)', () => [{ logical: 0, physical: MiB, length: 4 * MiB, flags: FIEMAP_EXTENT.shared | FIEMAP_EXTENT.last }], /shared with another file/],
    ['delayed allocation', () => [{ logical: 0, physical: 0, length: 4 * MiB, flags: FIEMAP_EXTENT.delalloc | FIEMAP_EXTENT.last }], /delayed allocation/],
    ['inline data', () => [{ logical: 0, physical: 0, length: 4 * MiB, flags: FIEMAP_EXTENT.dataInline | FIEMAP_EXTENT.last }], /inline/],
    ['a hole', () => [{ logical: MiB, physical: MiB, length: 3 * MiB, flags: FIEMAP_EXTENT.last }], /bytes 0 to 1048576 have no blocks/],
    ['no FIEMAP (tmpfs)', () => 'EOPNOTSUPP' as const, /cannot tell where the file lies/],
  ])('%s: the storage is the module\'s own file, and grow says why not', async (_name, answer, words) => {
    const { fake, driver } = setup();
    fake.fiemapAnswer = answer;
    const { id } = await createGrowable(fake, driver);
    expect(fake.storageOf(id).path).not.toBeNull();
    expect(fake.storageOf(id).appended).toEqual([]);
    const grow = await newFile(fake, 'g');
    const err = driver.storageGrowFile(id, grow.fd, grow.path, 8);
    await expect(err).rejects.toMatchObject({ errno: 'EOPNOTSUPP' });
    await expect(driver.storageGrowFile(id, (await newFile(fake, 'h')).fd, join(dir, 'h'), 8)).rejects.toThrow(words);
    await driver.snapshotDestroy(id);
    await driver.close();
    // both grow files' descriptors were closed by the refusals
    expect(fake.openCount).toBe(0);
  });

  it('without CAP_LINUX_IMMUTABLE the storage is not mapped: the module writes below no file it cannot pin', async () => {
    const { fake, driver } = setup();
    fake.setFlagsErrno = 'EPERM';
    const { id } = await createGrowable(fake, driver);
    expect(fake.storageOf(id).path).not.toBeNull();
    const grow = await newFile(fake, 'g');
    await expect(driver.storageGrowFile(id, grow.fd, grow.path, 8)).rejects.toThrow(/CAP_LINUX_IMMUTABLE/);
    await driver.snapshotDestroy(id);
    await driver.close();
  });

  it('an XFS realtime file is not mapped (its extents are on the realtime device)', async () => {
    const { fake, driver } = setup();
    fake.xflags = 0x1;
    const { id } = await createGrowable(fake, driver);
    expect(fake.storageOf(id).path).not.toBeNull();
    const grow = await newFile(fake, 'g');
    await expect(driver.storageGrowFile(id, grow.fd, grow.path, 8)).rejects.toThrow(/realtime device/);
    await driver.snapshotDestroy(id);
    await driver.close();
  });

  it('a full file system refuses the create in words; any other mapping failure (here FIEMAP EIO) leaves the module\'s own file', async () => {
    const fake = new FakeIoctlLayer({ dialect: 'val7' });
    const full = Object.assign(new Error('no space'), { code: 'ENOSPC' });
    const driver = new KernelDriver({ layer: fake, dialect: DIALECTS.val7, resolveDevice: () => STORE_DEV, reserveSpace: () => Promise.reject(full) });
    const f = await newFile(fake, 'diff');
    await expect(driver.snapshotCreate({ diffStoragePath: f.path, limitSectors: LIMIT, diffStorageFd: f.fd, growable: true })).rejects.toThrow(
      /ENOSPC: difference storage .*diff: the file system has no 4194304 bytes free/,
    );
    expect(await driver.snapshotCollect()).toEqual([]);
    await driver.close();
    expect(fake.openCount).toBe(0);
    const other = setup();
    other.fake.fiemapAnswer = () => 'EIO';
    const { id } = await createGrowable(other.fake, other.driver);
    expect(other.fake.storageOf(id).path).not.toBeNull();
    await other.driver.snapshotDestroy(id);
    await other.driver.close();
  });

  it('a file system without a block device (device 0:N) is not mapped', async () => {
    const { fake, driver } = setup('val7', () => '0:45');
    const { id } = await createGrowable(fake, driver);
    const grow = await newFile(fake, 'g');
    await expect(driver.storageGrowFile(id, grow.fd, grow.path, 8)).rejects.toThrow(/not on a block device the module can open/);
    await driver.snapshotDestroy(id);
    await driver.close();
  });

  it('a grow whose file cannot be mapped leaves the snapshot as it was, the descriptor closed', async () => {
    const { fake, driver } = setup();
    const { id } = await createGrowable(fake, driver);
    fake.fiemapAnswer = () => [{ logical: 0, physical: 0, length: 4 * MiB, flags: FIEMAP_EXTENT.unknown | FIEMAP_EXTENT.last }];
    const grow = await newFile(fake, 'g');
    const before = fake.openCount;
    await expect(driver.storageGrowFile(id, grow.fd, grow.path, LIMIT)).rejects.toThrow(/EOPNOTSUPP: .*location is not known/);
    expect(fake.openCount).toBe(before - 1);
    expect(fake.storageOf(id).appended).toHaveLength(1);
    expect((await driver.storageInfo(id)).limitSectors).toBe(LIMIT);
    await expect(driver.storageGrowFile(id, (await newFile(fake, 'z')).fd, join(dir, 'z'), 0)).rejects.toThrow(/EINVAL: grow by a positive number/);
    await driver.snapshotDestroy(id);
    await driver.close();
  });

  it('a device on the storage\'s disk cannot join the snapshot', async () => {
    const { fake, driver } = setup();
    const { id } = await createGrowable(fake, driver);
    await expect(driver.snapshotAdd(id, STORE_DEV)).rejects.toThrow(/EINVAL: .*lies on \/dev\/fake-store, the same disk/);
    await driver.snapshotAdd(id, SDB);
    await driver.snapshotDestroy(id);
    await driver.close();
  });

  it('v6 and lk6.15: growable asks are the module\'s own file; grow is EOPNOTSUPP in words', async () => {
    for (const dialect of ['v6', 'lk6.15'] as const) {
      const { fake, driver } = setup(dialect);
      expect(driver.canGrowStorage).toBe(false);
      const { id } = await createGrowable(fake, driver);
      expect(fake.storageOf(id).appended).toEqual([]);
      const grow = await newFile(fake, `g-${dialect}`);
      await expect(driver.storageGrowFile(id, grow.fd, grow.path, 8)).rejects.toThrow(/EOPNOTSUPP: .*has no append_storage/);
      await driver.snapshotDestroy(id);
      await driver.close();
    }
  });

  it('a snapshot not created growable says so', async () => {
    const { fake, driver } = setup();
    const f = await newFile(fake, 'diff');
    const id = await driver.snapshotCreate({ diffStoragePath: f.path, limitSectors: LIMIT, diffStorageFd: f.fd });
    const grow = await newFile(fake, 'g');
    await expect(driver.storageGrowFile(id, grow.fd, grow.path, 8)).rejects.toThrow(/not created growable/);
    await driver.snapshotDestroy(id);
    await driver.close();
  });
});
