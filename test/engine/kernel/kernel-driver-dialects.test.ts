/**
 * The one KernelDriver in each ABI dialect against the fake module of that dialect
 * (FakeIoctlLayer with `dialect`, whose VAL-7.0 and lk6.15 structs are decoded from
 * the spec's offsets written in the fake, not from the driver): create (by
 * /proc/self/fd path where the module takes a path), take, the filter commands
 * through the dialect's mechanism, event code 1, and VAL-7.0's append_storage.
 */
import { constants, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../engine/kernel/dialects.js';
import type { DialectName } from '../../../engine/kernel/dialects.js';
import { KernelDriver } from '../../../engine/kernel/kernel-driver.js';
import { DIALECT_SPEC, FakeIoctlLayer } from './fake-ioctl-layer.js';

const MiB = 1024 * 1024;
const SDB = '/dev/fake-sdb';
/** enum blkfilter_ctl_blksnap, from the spec (section 3). */
const CMD = { cbtinfo: 0, cbtmap: 1, cbtdirty: 2, snapshotadd: 3, snapshotinfo: 4 };

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kdial-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function setup(dialect: DialectName): { fake: FakeIoctlLayer; driver: KernelDriver } {
  const fake = new FakeIoctlLayer({ dialect });
  fake.addDevice({ path: SDB, capacity: 64 * MiB, major: 8, minor: 16 });
  const driver = new KernelDriver({ layer: fake, dialect: DIALECTS[dialect], resolveDevice: () => SDB });
  return { fake, driver };
}

/** A storage file the caller created and opened, as the helper hands it over (diffStorageFd). */
async function storageFile(fake: FakeIoctlLayer, name: string): Promise<{ path: string; fd: number }> {
  const path = join(dir, name);
  writeFileSync(path, Buffer.alloc(0), { mode: 0o600 });
  return { path, fd: await fake.open(path, constants.O_RDWR) };
}

describe.each(['v6', 'val7', 'lk6.15'] as const)('KernelDriver in the %s dialect', (dialect) => {
  const spec = DIALECT_SPEC[dialect];

  it('opens the dialect control device and reads the version', async () => {
    const { fake, driver } = setup(dialect);
    expect(await driver.version()).toEqual({ major: 2, minor: 0, revision: 0, build: 0 });
    expect(fake.calls[0]?.request).toBe(0x80085600);
    await driver.close();
    expect(fake.openCount).toBe(0);
  });

  it('create hands the module this very storage file, take names the image as the module does', async () => {
    const { fake, driver } = setup(dialect);
    const storage = await storageFile(fake, 'diff');
    const id = await driver.snapshotCreate({ diffStoragePath: storage.path, limitSectors: 8192, diffStorageFd: storage.fd });
    const held = fake.storageOf(id);
    // the module holds the inode the caller created
    expect(held.ino).toBe(statSync(storage.path).ino);
    if (dialect === 'v6') expect(held.path).toBeNull();
    else expect(held.path).toBe(`/proc/self/fd/${storage.fd}`);
    expect(fake.calls.at(-1)?.request).toBe(0xc0205601);

    await driver.snapshotAdd(id, SDB);
    await driver.snapshotTake(id);
    const info = await driver.snapshotInfo(SDB);
    expect(info).toEqual({ errorCode: 0, image: spec.image(8, 16) });
    expect(driver.imageDevicePath(info)).toBe(`/dev/${spec.image(8, 16)}`);
    await driver.snapshotDestroy(id);
    await driver.close();
    expect(fake.openCount).toBe(0);
    expect(fake.liveAllocations).toBe(0);
  });

  it('attach, cbtinfo, cbtmap, cbtdirty, snapshotinfo and detach go through the dialect filter requests', async () => {
    const { fake, driver } = setup(dialect);
    await driver.attach(SDB);
    const before = fake.calls.length;
    const info = await driver.cbtInfo(SDB);
    // 64 MiB with the 64 KiB minimum block (spec section 6)
    expect(info.blockSize).toBe(64 * 1024);
    expect(info.blockCount).toBe(1024);
    await driver.cbtDirty(SDB, [{ offset: 128 * 5, count: 1 }]);
    const map = await driver.cbtMap(SDB, 0, 8);
    // before any take the snapshot table (read map) is all zero
    expect(map).toEqual(new Uint8Array(8));
    await driver.snapshotInfo(SDB);
    await driver.detach(SDB);
    const filterCalls = fake.calls.slice(before);
    const ctlCmds = filterCalls.filter((c) => c.request === spec.ctl).map((c) => c.cmd);
    expect(ctlCmds).toEqual([CMD.cbtinfo, CMD.cbtdirty, CMD.cbtinfo, CMD.cbtmap, CMD.snapshotinfo, CMD.snapshotinfo]);
    expect(filterCalls.at(-1)?.request).toBe(spec.detach);
    expect(fake.calls.filter((c) => c.request === spec.attach)).toHaveLength(1);
    if (dialect === 'val7') {
      // every filter request named the device by path
      expect(new Set(filterCalls.filter((c) => c.request !== 0x80105604).map((c) => c.devpath))).toEqual(new Set([SDB]));
    }
    // after detach the tracker is gone: the module answers ENOENT
    await expect(driver.cbtInfo(SDB)).rejects.toThrow(/ENOENT/);
    await driver.close();
    expect(fake.openCount).toBe(0);
  });

  it('a second attach is EALREADY from the module', async () => {
    const { driver } = setup(dialect);
    await driver.attach(SDB);
    await expect(driver.attach(SDB)).rejects.toThrow(/EALREADY/);
    await driver.close();
  });

  it('event code 1 is reported as the dialect defines it, with its requested sectors', async () => {
    const { fake, driver } = setup(dialect);
    const storage = await storageFile(fake, 'diff');
    const id = await driver.snapshotCreate({ diffStoragePath: storage.path, limitSectors: 8192, diffStorageFd: storage.fd });
    const body = Buffer.alloc(8);
    body.writeBigUInt64LE(4096n, 0);
    fake.queueEvent(id, 1, body);
    const event = await driver.snapshotWaitEvent(id, 1000);
    expect(event).toMatchObject({ code: dialect === 'val7' ? 'low_free_space' : 'no_space', requestedSectors: 4096 });
    const corrupted = Buffer.alloc(12);
    corrupted.writeUInt32LE(8, 0);
    corrupted.writeUInt32LE(16, 4);
    // the modules send abs(error) (diff_area.c; +28 measured on VAL-7.0 in the VM test)
    corrupted.writeInt32LE(28, 8);
    fake.queueEvent(id, 0, corrupted);
    expect(await driver.snapshotWaitEvent(id, 1000)).toMatchObject({ code: 'corrupted', devMajor: 8, devMinor: 16, errCode: -28 });
    // a module that sends the negative errno is reported the same way
    corrupted.writeInt32LE(-28, 8);
    fake.queueEvent(id, 0, corrupted);
    expect(await driver.snapshotWaitEvent(id, 1000)).toMatchObject({ code: 'corrupted', errCode: -28 });
    await driver.snapshotDestroy(id);
    await driver.close();
  });
});

describe.each(['val7', 'lk6.15'] as const)('%s: an existing storage larger than the limit', (dialect) => {
  // measured on the real VAL-7.0 module in the VM test: diff_storage_set() answers -ENOSPC
  it('is refused with ENOSPC naming the storage, the limit and what to do; nothing stays open or held', async () => {
    const { fake, driver } = setup(dialect);
    const path = join(dir, 'prepared');
    writeFileSync(path, Buffer.alloc(32 * MiB, 0xc3), { mode: 0o600 });
    const fd = await fake.open(path, constants.O_RDWR);
    const attempt = driver.snapshotCreate({ diffStoragePath: path, limitSectors: (16 * MiB) / 512, diffStorageFd: fd });
    await expect(attempt).rejects.toMatchObject({ errno: 'ENOSPC' });
    await expect(attempt).rejects.toThrow(new RegExp(`${path} is larger than the limit of 16 MiB: .*give a limit of at least its size`));
    expect(statSync(path).size).toBe(32 * MiB);
    expect(await driver.snapshotCollect()).toEqual([]);
    await driver.close();
    expect(fake.openCount).toBe(0);
    expect(fake.liveAllocations).toBe(0);
  });

  it('the same file with a limit of at least its size is accepted', async () => {
    const { fake, driver } = setup(dialect);
    const path = join(dir, 'prepared');
    writeFileSync(path, Buffer.alloc(8 * MiB, 0xc3), { mode: 0o600 });
    const fd = await fake.open(path, constants.O_RDWR);
    const id = await driver.snapshotCreate({ diffStoragePath: path, limitSectors: (8 * MiB) / 512, diffStorageFd: fd });
    expect(fake.storageOf(id).ino).toBe(statSync(path).ino);
    await driver.snapshotDestroy(id);
    await driver.close();
  });
});

describe('VAL-7.0: append_storage and the stock-kernel block device', () => {
  it('appendStorage passes the id, the device path and the sector ranges (IOCTL 0x40285622)', async () => {
    const { fake, driver } = setup('val7');
    const storage = await storageFile(fake, 'diff');
    const id = await driver.snapshotCreate({ diffStoragePath: storage.path, limitSectors: 8192, diffStorageFd: storage.fd });
    await driver.appendStorage(id, '/dev/fake-spare', [
      { offset: 2048, count: 4096 },
      { offset: 1 << 20, count: 8 },
    ]);
    expect(fake.calls.at(-1)?.request).toBe(0x40285622);
    expect(fake.storageOf(id).appended).toEqual([
      { devpath: '/dev/fake-spare', ranges: [{ offset: 2048, count: 4096 }, { offset: 1 << 20, count: 8 }] },
    ]);
    await driver.snapshotDestroy(id);
    await driver.close();
    expect(fake.liveAllocations).toBe(0);
  });

  it('append mode: create with a NULL storage path, the low_free_space request answered with appendStorage', async () => {
    const { fake, driver } = setup('val7');
    const id = await driver.snapshotCreateAppendable(32768);
    const create = fake.calls.at(-1);
    expect(create?.request).toBe(0xc0205601);
    expect(fake.storageOf(id).path).toBeNull();
    // the module asks for min(diff_storage_minimum, limit) at create
    const event = await driver.snapshotWaitEvent(id, 1000);
    expect(event).toMatchObject({ code: 'low_free_space', snapshotId: id, requestedSectors: 32768 });
    await driver.appendStorage(id, '/dev/fake-spare', [{ offset: 0, count: 32768 }]);
    expect(fake.storageOf(id).appended).toEqual([{ devpath: '/dev/fake-spare', ranges: [{ offset: 0, count: 32768 }] }]);
    await expect(driver.snapshotCreateAppendable(0)).rejects.toThrow(/EINVAL: .*positive number of sectors/);
    await driver.snapshotDestroy(id);
    await driver.close();
    expect(fake.liveAllocations).toBe(0);
  });

  it('append mode is EOPNOTSUPP without sending anything in v6 and lk6.15', async () => {
    for (const dialect of ['v6', 'lk6.15'] as const) {
      const { fake, driver } = setup(dialect);
      await expect(driver.snapshotCreateAppendable(32768)).rejects.toThrow(/EOPNOTSUPP: .*needs a difference storage/);
      expect(fake.calls).toHaveLength(0);
      await driver.close();
    }
  });

  it('appendStorage to an unknown snapshot is ESRCH, as the module answers', async () => {
    const { driver } = setup('val7');
    await expect(driver.appendStorage('8d5c5b2e-0c61-4d8b-9a3c-7d0f5d3c1a11', '/dev/fake-spare', [{ offset: 0, count: 8 }])).rejects.toThrow(
      /ESRCH/,
    );
    await driver.close();
  });

  it('appendStorage is EOPNOTSUPP without sending anything in v6 and lk6.15', async () => {
    for (const dialect of ['v6', 'lk6.15'] as const) {
      const { fake, driver } = setup(dialect);
      await expect(driver.appendStorage('8d5c5b2e-0c61-4d8b-9a3c-7d0f5d3c1a11', SDB, [{ offset: 0, count: 8 }])).rejects.toThrow(
        /EOPNOTSUPP/,
      );
      expect(fake.calls).toHaveLength(0);
      await driver.close();
    }
  });

  it('the v6 driver on a VAL-7.0 machine gets ENOTTY from the block device (as measured), the VAL-7 driver does not', async () => {
    const fake = new FakeIoctlLayer({ dialect: 'val7' });
    fake.addDevice({ path: SDB, capacity: 64 * MiB, major: 8, minor: 16 });
    const v6 = new KernelDriver({ layer: fake, dialect: DIALECTS.v6, controlPath: '/dev/veeamblksnap' });
    await expect(v6.attach(SDB)).rejects.toThrow(/ENOTTY: .*no block-device filter support/);
    await v6.close();
    const val7 = new KernelDriver({ layer: fake, dialect: DIALECTS.val7 });
    await val7.attach(SDB);
    await val7.close();
  });

  it('a missing /dev/bdevfilter says the bdevfilter module is not loaded', async () => {
    const fake = new FakeIoctlLayer({ dialect: 'val7' });
    const driver = new KernelDriver({ layer: fake, dialect: { ...DIALECTS.val7, filterControlPath: join(dir, 'no-bdevfilter') } });
    await expect(driver.attach(SDB)).rejects.toThrow(/ENOENT: .*bdevfilter kernel module is not loaded/);
    await driver.close();
  });
});

describe('lk6.15: the number collision', () => {
  it("a v6 driver's CTL (0xc030128e) is taken as ATTACH by an lk6.15 kernel; the lk6.15 driver sends CTL as 0xc0301290", async () => {
    const fake = new FakeIoctlLayer({ dialect: 'lk6.15' });
    fake.addDevice({ path: SDB, capacity: 64 * MiB, major: 8, minor: 16 });
    const v6 = new KernelDriver({ layer: fake, dialect: DIALECTS.v6 });
    // the v6 cbtinfo request decodes as an attach of the filter named by its first 32 bytes ("blksnap")
    await v6.cbtInfo(SDB);
    await v6.close();
    const lk = new KernelDriver({ layer: fake, dialect: DIALECTS['lk6.15'] });
    await expect(lk.attach(SDB)).rejects.toThrow(/EALREADY/);
    expect((await lk.cbtInfo(SDB)).blockCount).toBe(1024);
    expect(fake.calls.at(-1)).toMatchObject({ request: 0xc0301290, cmd: CMD.cbtinfo });
    await lk.close();
  });
});
