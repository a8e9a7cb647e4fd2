/**
 * The engine never fronts a block device that something else uses, and keeps a device
 * it fronts to itself: real loop devices, file systems and swap ([root]).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine, FileBlockDevice } from '../../../engine/core/index.js';
import { canUseLoop, hasCommand } from '../../helpers/env.js';
import { SMALL_PARAMS, tempDir } from './helpers.js';

const MiB = 1 << 20;
let dir: string;
const cleanups: (() => void)[] = [];

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: 'pipe' });
}

/** A loop device over a new sparse file of `bytes` (detached after the test). */
function loopDevice(bytes: number, options: { partitions?: boolean } = {}): string {
  const file = path.join(dir, `backing-${cleanups.length}.img`);
  fs.writeFileSync(file, '');
  fs.truncateSync(file, bytes);
  const args = ['--find', '--show', ...(options.partitions ? ['--partscan'] : []), file];
  const loop = execFileSync('losetup', args, { encoding: 'utf8' }).trim();
  cleanups.push(() => run('losetup', ['-d', loop]));
  return loop;
}

function mountAt(device: string, name: string): string {
  const mnt = path.join(dir, name);
  fs.mkdirSync(mnt);
  run('mount', [device, mnt]);
  cleanups.push(() => run('umount', [mnt]));
  return mnt;
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeEach(() => {
  dir = tempDir('in-use');
});
afterEach(() => {
  for (const undo of cleanups.splice(0).reverse()) {
    try {
      undo();
    } catch {
      // best effort: the next step still runs
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

const canMkfs = canUseLoop && hasCommand('mkfs.ext4');
/** dmsetup and a kernel with device-mapper (many test kernels have none: the test then skips visibly). */
const hasDeviceMapper = canUseLoop && hasCommand('dmsetup') && /device-mapper/.test(readOrEmpty('/proc/misc'));

function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

describe('fronting a block device that something else uses', () => {
  it.skipIf(!canMkfs)('[root] fronting a mounted loop device is refused with EBUSY, naming the mount point', async () => {
    const loop = loopDevice(16 * MiB);
    run('mkfs.ext4', ['-q', loop]);
    const mnt = mountAt(loop, 'mnt with space');
    await expect(FileBlockDevice.open(loop, 'disk')).rejects.toThrow(`EBUSY: cannot front ${loop}: mounted at ${mnt}`);
    const engine = createEmbeddedEngine({ params: SMALL_PARAMS });
    try {
      await expect(engine.addDevice({ path: loop })).rejects.toMatchObject({ errno: 'EBUSY', message: expect.stringContaining(`mounted at ${mnt}`) });
      expect(engine.listDevices()).toEqual([]);
    } finally {
      await engine.close();
    }
  });

  it.skipIf(!canMkfs || !hasCommand('addpart'))('[root] fronting a whole loop device is refused while one of its partitions is mounted, naming the partition', async () => {
    const loop = loopDevice(32 * MiB, { partitions: true });
    // a partition added with BLKPG (addpart): no partition-table parser needed in the kernel
    run('addpart', [loop, '1', '2048', String((32 * MiB) / 512 - 2048)]);
    const part = `${loop}p1`;
    await waitFor(() => fs.existsSync(part), `${part} to appear`);
    run('mkfs.ext4', ['-q', part]);
    const mnt = mountAt(part, 'part');
    await expect(FileBlockDevice.open(loop, 'disk')).rejects.toThrow(`${path.basename(part)} is mounted at ${mnt}`);
  });

  it.skipIf(!canUseLoop || !hasCommand('mkswap') || !hasCommand('swapon'))('[root] fronting a loop device used as swap is refused, saying so', async () => {
    const loop = loopDevice(16 * MiB);
    run('mkswap', ['-q', loop]);
    const on = spawnSync('swapon', [loop], { encoding: 'utf8' });
    expect(on.status, `swapon failed: ${on.stderr}`).toBe(0);
    cleanups.push(() => run('swapoff', [loop]));
    await expect(FileBlockDevice.open(loop, 'disk')).rejects.toThrow(/^EBUSY: cannot front \S+: used as swap/);
  });

  it.skipIf(!hasDeviceMapper)('[root] [device-mapper] a loop device held by a device-mapper device is refused, naming dm-N and its name', async () => {
    const loop = loopDevice(8 * MiB);
    const name = `bm-test-${process.pid}`;
    run('dmsetup', ['create', '--noudevsync', name, '--table', `0 ${(8 * MiB) / 512} linear ${loop} 0`]);
    cleanups.push(() => run('dmsetup', ['remove', '--noudevsync', name]));
    await expect(FileBlockDevice.open(loop, 'disk')).rejects.toThrow(new RegExp(`^EBUSY: cannot front \\S+: held by dm-\\d+ \\(${name}\\)`));
  });

  it.skipIf(!canUseLoop)('[root] a loop device opened exclusively by another program is refused, saying so', async () => {
    const loop = loopDevice(8 * MiB);
    const fd = fs.openSync(loop, fs.constants.O_RDONLY | fs.constants.O_EXCL);
    try {
      await expect(FileBlockDevice.open(loop, 'disk')).rejects.toThrow(/^EBUSY: cannot front \S+: it is opened exclusively by another program/);
    } finally {
      fs.closeSync(fd);
    }
    // free again: fronted
    const dev = await FileBlockDevice.open(loop, 'disk');
    await dev.close();
  });
});

describe('fronting an image file that something else uses', () => {
  it.skipIf(!canUseLoop)('[root] an image file that a loop device is attached to is refused, naming the loop device', async () => {
    const loop = loopDevice(8 * MiB);
    const backing = execFileSync('losetup', ['--noheadings', '--output', 'BACK-FILE', loop], { encoding: 'utf8' }).trim();
    await expect(FileBlockDevice.open(backing, 'disk')).rejects.toThrow(`EBUSY: cannot front ${backing}: it is the backing file of ${loop}`);
    run('losetup', ['-d', loop]);
    cleanups.pop();
    const dev = await FileBlockDevice.open(backing, 'disk');
    await dev.close();
  });
});

describe('a block device the engine fronts stays its own', () => {
  it.skipIf(!canMkfs)('[root] mounting a loop device while the engine fronts it fails (busy), and works after the engine lets go', async () => {
    const loop = loopDevice(16 * MiB);
    run('mkfs.ext4', ['-q', loop]);
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    const engine = createEmbeddedEngine({ params: SMALL_PARAMS });
    try {
      await engine.addDevice({ path: loop, name: 'disk' });
      const mount = spawnSync('mount', [loop, mnt], { encoding: 'utf8' });
      expect(mount.status).not.toBe(0);
      expect(mount.stderr).toMatch(/busy|already mounted/i);
      await engine.removeDevice('disk');
      run('mount', [loop, mnt]);
      run('umount', [mnt]);
    } finally {
      await engine.close();
    }
  });

  it.skipIf(!canMkfs || !hasCommand('addpart'))('[root] a partition of a whole disk the engine fronts cannot be mounted either', async () => {
    const loop = loopDevice(32 * MiB, { partitions: true });
    run('addpart', [loop, '1', '2048', '20480']);
    const part = `${loop}p1`;
    await waitFor(() => fs.existsSync(part), `${part} to appear`);
    run('mkfs.ext4', ['-q', part]);
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    const dev = await FileBlockDevice.open(loop, 'disk');
    try {
      const mount = spawnSync('mount', [part, mnt], { encoding: 'utf8' });
      expect(mount.status).not.toBe(0);
      expect(mount.stderr).toMatch(/busy|already mounted/i);
    } finally {
      await dev.close();
    }
    run('mount', [part, mnt]);
    run('umount', [mnt]);
  });
});
