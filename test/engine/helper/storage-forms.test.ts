/**
 * The difference storage in each form the module accepts (new file, existing file,
 * directory, block device), through the helper, with each driver: the real
 * embedded engine, and the kernel driver in its three dialects over the fake ioctl
 * layer (which opens a path as the modules do: a block device exclusively, a
 * directory with O_TMPFILE). What is checked is what the driver really holds (the
 * inode behind this process's descriptors, or the fake module's), what is left on
 * disk after destroy, and the words of each refusal.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EmbeddedEngineApi } from '../../../engine/core/embedded-api.js';
import { createEmbeddedDriver } from '../../../engine/helper/driver-select.js';
import { HelperService } from '../../../engine/helper/service.js';
import type { ClientContext } from '../../../engine/helper/service.js';
import { SettingsStore } from '../../../engine/helper/settings-store.js';
import { StorageLedger } from '../../../engine/helper/storage-ledger.js';
import type { Owner } from '../../../engine/helper/owner.js';
import { DIALECTS } from '../../../engine/kernel/dialects.js';
import { KernelDriver } from '../../../engine/kernel/kernel-driver.js';
import type { StorageForm } from '../../../engine/protocol/schemas.js';
import { canUseLoop, hasCommand, isRoot } from '../../helpers/env.js';
import { FakeIoctlLayer } from '../kernel/fake-ioctl-layer.js';
import { embeddedBackends, kernelBackends } from './kernel-backends.js';

const MiB = 1024 * 1024;
const FAKE_SDB = '/dev/fake-sdb';
const ctx: ClientContext = { subscriptions: new Set() };

interface Rig {
  service: HelperService;
  /** Puts the rig's device in the snapshot. */
  addDevice(id: string): Promise<void>;
  /** Embedded only: the engine (to write the original and read the image). */
  engine: EmbeddedEngineApi | null;
  /** Fake module only: the inode it holds as a snapshot's storage. */
  fakeHeld: ((id: string) => number) | null;
  close(): Promise<void>;
}

type DriverName = 'embedded' | 'v6' | 'val7' | 'lk6.15';
const DRIVERS: DriverName[] = ['embedded', 'v6', 'val7', 'lk6.15'];

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bm-forms-'));
  chmodSync(dir, 0o755);
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function rig(driverName: DriverName, owner?: Owner): Promise<Rig> {
  const state = join(dir, 'state');
  mkdirSync(state, { recursive: true });
  const settings = new SettingsStore(state);
  await settings.load();
  const ownerOverride = owner ? { owner } : {};
  if (driverName === 'embedded') {
    const engine = await createEmbeddedDriver({ chunkMinimumShift: 16, diffStorageMinimum: 2048 });
    const disk = join(dir, 'disk.img');
    writeFileSync(disk, Buffer.alloc(16 * MiB, 0x5a));
    await engine.addDevice({ path: disk, name: 'disk1' });
    const service = new HelperService(embeddedBackends(engine, ownerOverride), settings, () => undefined, () => undefined, new StorageLedger(state));
    return {
      service,
      addDevice: async (id) => {
        await service.handlers.snapshotAdd({ id, device: 'disk1' }, ctx);
      },
      engine,
      fakeHeld: null,
      close: async () => {
        await service.stopPumps();
        await engine.close();
      },
    };
  }
  const fake = new FakeIoctlLayer({ dialect: driverName });
  fake.addDevice({ path: FAKE_SDB, capacity: 64 * MiB, major: 8, minor: 16 });
  const driver = new KernelDriver({ layer: fake, dialect: DIALECTS[driverName], resolveDevice: () => FAKE_SDB });
  const service = new HelperService(
    kernelBackends(driver, { listBlockDevices: async () => [{ path: FAKE_SDB, name: 'fake-sdb', capacity: 64 * MiB }], ...ownerOverride }),
    settings,
    () => undefined,
    () => undefined,
    new StorageLedger(state),
  );
  return {
    service,
    // the helper resolves a device path on this machine: the fake module's device is added directly
    addDevice: (id) => driver.snapshotAdd(id, FAKE_SDB),
    engine: null,
    fakeHeld: (id) => fake.storageOf(id).ino,
    close: async () => {
      await service.stopPumps();
      await driver.close();
    },
  };
}

/** The inodes (and what the kernel calls them) behind this process's open descriptors. */
function heldFiles(): { ino: number; rdev: number; link: string; nlink: number; uid: number }[] {
  const out: { ino: number; rdev: number; link: string; nlink: number; uid: number }[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const link = readlinkSync(`/proc/self/fd/${fd}`);
      const st = statSync(`/proc/self/fd/${fd}`);
      out.push({ ino: st.ino, rdev: st.rdev, link, nlink: st.nlink, uid: st.uid });
    } catch {
      // closed meanwhile (the directory listing's own descriptor)
    }
  }
  return out;
}

async function create(r: Rig, form: StorageForm, path: string, limitSectors = 16384): Promise<string> {
  const { id } = await r.service.handlers.snapshotCreate({ diffStoragePath: path, diffStorageForm: form, limitSectors }, ctx);
  await r.addDevice(id);
  return id;
}

/** Embedded: take, overwrite the start of the original, and check the image still reads the take. */
async function takeWriteAndCheckImage(r: Rig, id: string): Promise<void> {
  await r.service.handlers.snapshotTake({ id }, ctx);
  if (!r.engine) return;
  // 3 MiB: 48 chunks of 64 KiB, more than the store queue keeps in memory (16): they reach the storage
  await r.engine.device('disk1').write(0, Buffer.alloc(3 * MiB, 0x11));
  const info = await r.service.handlers.snapshotInfo({ device: 'disk1' }, ctx);
  const image = await r.engine.image(info.image).read(0, 3 * MiB);
  expect(image.equals(Buffer.alloc(3 * MiB, 0x5a))).toBe(true);
  expect((await r.engine.device('disk1').read(0, 4096)).every((b) => b === 0x11)).toBe(true);
}

describe.each(DRIVERS)('difference storage forms with the %s driver', (driverName) => {
  it('new-file: created for the snapshot, held by the driver, removed at destroy', async () => {
    const r = await rig(driverName);
    try {
      const path = join(dir, 'diff-new');
      const id = await create(r, 'new-file', path);
      const ino = statSync(path).ino;
      if (r.fakeHeld) expect(r.fakeHeld(id)).toBe(ino);
      else expect(heldFiles().some((f) => f.ino === ino)).toBe(true);
      await takeWriteAndCheckImage(r, id);
      await r.service.handlers.snapshotDestroy({ id }, ctx);
      expect(existsSync(path)).toBe(false);
    } finally {
      await r.close();
    }
  });

  it('existing-file: that very file is the storage, and after destroy it is still there, same size, untouched beyond what was written', async () => {
    const r = await rig(driverName);
    try {
      const path = join(dir, 'prepared');
      const original = Buffer.alloc(8 * MiB, 0xc3);
      writeFileSync(path, original, { mode: 0o600 });
      const ino = statSync(path).ino;
      const id = await create(r, 'existing-file', path, (8 * MiB) / 512);
      if (r.fakeHeld) expect(r.fakeHeld(id)).toBe(ino);
      else expect(heldFiles().some((f) => f.ino === ino)).toBe(true);
      await takeWriteAndCheckImage(r, id);
      const info = await r.service.handlers.storageInfo({ id }, ctx);
      expect(info.path).toBe(path);
      await r.service.handlers.snapshotDestroy({ id }, ctx);
      const after = readFileSync(path);
      expect(statSync(path).ino).toBe(ino);
      expect(after.length).toBe(8 * MiB);
      // the embedded engine copied at most the 3 MiB written (48 chunks): the rest is as prepared
      expect(after.subarray(4 * MiB).equals(original.subarray(4 * MiB))).toBe(true);
      if (r.engine) expect(after.subarray(0, 4 * MiB).includes(Buffer.alloc(64 * 1024, 0x5a))).toBe(true); // the take's data went there
      else expect(after.equals(original)).toBe(true);
    } finally {
      await r.close();
    }
  });

  it('directory: an unnamed file in it (the user\'s, never named), gone with the snapshot', async () => {
    const r = await rig(driverName);
    try {
      const place = join(dir, 'place');
      mkdirSync(place);
      const id = await create(r, 'directory', place);
      expect(readdirSync(place)).toEqual([]);
      const unnamed = heldFiles().filter((f) => f.link.startsWith(`${place}/`));
      expect(unnamed.length).toBeGreaterThan(0);
      for (const f of unnamed) {
        expect(f.link).toMatch(/ \(deleted\)$/);
        expect(f.nlink).toBe(0);
        expect(f.uid).toBe(process.getuid?.());
      }
      if (r.fakeHeld) expect(unnamed.map((f) => f.ino)).toContain(r.fakeHeld(id));
      await takeWriteAndCheckImage(r, id);
      await r.service.handlers.snapshotDestroy({ id }, ctx);
      expect(readdirSync(place)).toEqual([]);
      expect(heldFiles().filter((f) => f.link.startsWith(`${place}/`))).toEqual([]);
    } finally {
      await r.close();
    }
  });

  it.skipIf(!canUseLoop)('[root][loop] block-device: claimed exclusively while the snapshot lives, released at destroy, never removed', async () => {
    const backing = join(dir, 'spare.img');
    writeFileSync(backing, Buffer.alloc(32 * MiB));
    const loop = execFileSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' }).trim();
    const r = await rig(driverName);
    try {
      const rdev = statSync(loop).rdev;
      // the whole 32 MiB device is the storage: the path modules refuse a smaller limit (ENOSPC)
      const id = await create(r, 'block-device', loop, (32 * MiB) / 512);
      if (r.fakeHeld) expect(r.fakeHeld(id)).toBe(statSync(loop).ino);
      else expect(heldFiles().some((f) => f.rdev === rdev)).toBe(true);
      // whoever holds it (the engine, or the module as the fake does) holds it exclusively
      expect(() => openSync(loop, constants.O_RDWR | constants.O_EXCL)).toThrow(/EBUSY/);
      await takeWriteAndCheckImage(r, id);
      await r.service.handlers.snapshotDestroy({ id }, ctx);
      closeSync(openSync(loop, constants.O_RDWR | constants.O_EXCL));
      expect(statSync(loop).isBlockDevice()).toBe(true);
    } finally {
      await r.close();
      execFileSync('losetup', ['-d', loop]);
    }
  });

  it('refusals say why, in words: not a regular file, a symlink, a directory, not a block device, missing', async () => {
    const r = await rig(driverName);
    try {
      const place = join(dir, 'place');
      mkdirSync(place);
      writeFileSync(join(place, 'real'), Buffer.alloc(MiB));
      symlinkSync(join(place, 'real'), join(place, 'link'));
      execFileSync('mkfifo', [join(place, 'fifo')]);
      await expect(create(r, 'existing-file', join(place, 'fifo'))).rejects.toThrow(/is not a regular file/);
      await expect(create(r, 'existing-file', join(place, 'link'))).rejects.toThrow(/symbolic link/);
      await expect(create(r, 'existing-file', place)).rejects.toThrow(/is a directory, not a regular file \(choose the directory form/);
      await expect(create(r, 'existing-file', join(place, 'none'))).rejects.toThrow(/no such file or directory/);
      await expect(create(r, 'block-device', join(place, 'real'))).rejects.toThrow(/is not a block device \(block devices are under \/dev\)/);
      await expect(create(r, 'block-device', '/dev/null')).rejects.toThrow(/only block devices may be used|is not a block device/);
      await expect(create(r, 'directory', join(place, 'real'))).rejects.toThrow(/ENOTDIR|not a directory/);
      await expect(create(r, 'directory', join(place, 'link'))).rejects.toThrow(/symbolic link/);
      await expect(create(r, 'new-file', join(place, 'real'))).rejects.toThrow(/already exists/);
      // nothing was created or changed by the refusals
      expect(readdirSync(place).sort()).toEqual(['fifo', 'link', 'real']);
      expect(statSync(join(place, 'real')).size).toBe(MiB);
    } finally {
      await r.close();
    }
  });
});

describe.each(['val7', 'lk6.15'] as const)('an existing file larger than the limit with the %s driver', (driverName) => {
  it('is ENOSPC from the module, said in words; the file is untouched and nothing is recorded', async () => {
    const r = await rig(driverName);
    try {
      const path = join(dir, 'prepared');
      const original = Buffer.alloc(8 * MiB, 0xc3);
      writeFileSync(path, original, { mode: 0o600 });
      const attempt = r.service.handlers.snapshotCreate({ diffStoragePath: path, diffStorageForm: 'existing-file', limitSectors: (4 * MiB) / 512 }, ctx);
      await expect(attempt).rejects.toThrow(/larger than the limit of 4 MiB: the module uses all of an existing file or block device/);
      expect(readFileSync(path).equals(original)).toBe(true);
      expect(await r.service.handlers.snapshotCollect({}, ctx)).toEqual({ ids: [] });
    } finally {
      await r.close();
    }
  });
});

describe('refusals for what something else uses', () => {
  it.skipIf(!canUseLoop || !hasCommand('mkfs.ext4'))('[root][loop] a mounted block device is refused, naming the mount point; a file behind a loop device too', async () => {
    const backing = join(dir, 'fs.img');
    writeFileSync(backing, Buffer.alloc(32 * MiB));
    execFileSync('mkfs.ext4', ['-q', '-F', backing]);
    const loop = execFileSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' }).trim();
    const mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    execFileSync('mount', [loop, mnt]);
    const r = await rig('embedded');
    try {
      await expect(create(r, 'block-device', loop)).rejects.toThrow(new RegExp(`in use: mounted at ${mnt}`));
      await expect(create(r, 'existing-file', backing)).rejects.toThrow(new RegExp(`in use: it is the backing file of ${loop}`));
    } finally {
      await r.close();
      execFileSync('umount', [mnt]);
      execFileSync('losetup', ['-d', loop]);
    }
  });

  it.skipIf(!canUseLoop)('[root][loop] a block device another program opened exclusively is refused', async () => {
    const backing = join(dir, 'spare.img');
    writeFileSync(backing, Buffer.alloc(8 * MiB));
    const loop = execFileSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' }).trim();
    const holder = openSync(loop, constants.O_RDWR | constants.O_EXCL);
    const r = await rig('val7');
    try {
      await expect(create(r, 'block-device', loop)).rejects.toThrow(/in use: it is opened exclusively by another program/);
    } finally {
      await r.close();
      closeSync(holder);
      execFileSync('losetup', ['-d', loop]);
    }
  });

  it.skipIf(!isRoot)('[root] a file or directory the user the helper works for may not use is refused with permission denied', async () => {
    const nobody: Owner = { uid: 65534, gid: 65534, groups: [65534] };
    const secret = join(dir, 'secret');
    mkdirSync(secret, { mode: 0o700 });
    const rootsFile = join(dir, 'roots-file');
    writeFileSync(rootsFile, Buffer.alloc(MiB, 7), { mode: 0o600 });
    for (const driverName of ['embedded', 'lk6.15'] as const) {
      const r = await rig(driverName, nobody);
      try {
        await expect(create(r, 'existing-file', rootsFile)).rejects.toThrow(/permission denied \(for the user the helper works for\)/);
        await expect(create(r, 'directory', secret)).rejects.toThrow(/permission denied \(for the user the helper works for\)/);
        await expect(create(r, 'new-file', join(secret, 'diff'))).rejects.toThrow(/permission denied \(for the user the helper works for\)/);
      } finally {
        await r.close();
      }
    }
    expect(readFileSync(rootsFile).every((b) => b === 7)).toBe(true);
    expect(readdirSync(secret)).toEqual([]);
  });
});
