/**
 * Images the engine fronts carry qemu's image locks: real qemu tools cannot write them
 * behind the engine's back, and the engine does not front an image qemu writes.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine, FileBlockDevice } from '../../../engine/core/index.js';
import { LOCK_PERM_BASE, LOCK_SHARED_BASE, lockedByOthers } from '../../../engine/core/image-lock.js';
import { hasCommand } from '../../helpers/env.js';
import { makeImage, SMALL_PARAMS, tempDir } from './helpers.js';

const MiB = 1 << 20;
const WRITE_BIT = 1; // qemu's BLK_PERM_WRITE is 0x02: bit 1
let dir: string;
let children: ChildProcess[] = [];

beforeEach(() => {
  dir = tempDir('lock');
});
afterEach(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
  }
  children = [];
  fs.rmSync(dir, { recursive: true, force: true });
});

function qemuIoWrite(file: string): ReturnType<typeof spawnSync> {
  return spawnSync('qemu-io', ['-f', 'raw', '-c', 'write -P 0xee 0 4k', file], { encoding: 'utf8' });
}

/** True while some other open file description holds lock byte `byte` of `file`. */
function othersLock(file: string, byte: number): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    return lockedByOthers(fd, byte);
  } finally {
    fs.closeSync(fd);
  }
}

describe('qemu image locks on images the engine fronts', () => {
  it('takes the bytes qemu reads as "writes it, shares neither write nor resize", and drops them on close', async () => {
    const img = makeImage(dir, 'disk.img', MiB);
    const dev = await FileBlockDevice.open(img, 'disk');
    // the numbers are qemu's (block/file-posix.c): 100 + permission bit, 200 + bit not shared
    expect([LOCK_PERM_BASE, LOCK_SHARED_BASE]).toEqual([100, 200]);
    expect([100, 101, 201, 203].map((b) => othersLock(img, b))).toEqual([true, true, true, true]);
    expect([102, 103, 200, 202].map((b) => othersLock(img, b))).toEqual([false, false, false, false]);
    await dev.close();
    expect([100, 101, 201, 203].map((b) => othersLock(img, b))).toEqual([false, false, false, false]);
  });

  it.skipIf(!hasCommand('qemu-io'))('qemu-io cannot open a fronted image for writing ("write" lock), and can once the engine lets go', async () => {
    const img = makeImage(dir, 'disk.img', MiB, 0x11);
    const engine = createEmbeddedEngine({ params: SMALL_PARAMS });
    try {
      await engine.addDevice({ path: img, name: 'disk' });
      const refused = qemuIoWrite(img);
      expect(refused.status).not.toBe(0);
      expect(refused.stderr).toMatch(/Failed to get "write" lock/);
      expect(fs.readFileSync(img).subarray(0, 4096).every((x) => x === 0x11)).toBe(true);
      await engine.removeDevice('disk');
      const allowed = qemuIoWrite(img);
      expect(allowed.stderr).toBe('');
      expect(allowed.status).toBe(0);
      expect(fs.readFileSync(img).subarray(0, 4096).every((x) => x === 0xee)).toBe(true);
    } finally {
      await engine.close();
    }
  });

  it.skipIf(!hasCommand('qemu-img'))('qemu-img info still reads a fronted image; qemu-img resize is refused', async () => {
    const img = makeImage(dir, 'disk.img', MiB);
    const dev = await FileBlockDevice.open(img, 'disk');
    try {
      const info = spawnSync('qemu-img', ['info', '--output=json', img], { encoding: 'utf8' });
      expect(info.stderr).toBe('');
      expect((JSON.parse(info.stdout) as { 'virtual-size': number })['virtual-size']).toBe(MiB);
      const resize = spawnSync('qemu-img', ['resize', '-f', 'raw', img, '2M'], { encoding: 'utf8' });
      expect(resize.status).not.toBe(0);
      expect(resize.stderr).toMatch(/Failed to get .*lock/);
      expect(fs.statSync(img).size).toBe(MiB);
    } finally {
      await dev.close();
    }
  });

  it.skipIf(!hasCommand('qemu-nbd'))('the engine refuses an image that a running qemu-nbd holds for writing, and fronts it after qemu-nbd exits', async () => {
    const img = makeImage(dir, 'disk.img', MiB);
    const child = spawn('qemu-nbd', ['-f', 'raw', '--socket', path.join(dir, 'nbd.sock'), img], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    const deadline = Date.now() + 10_000;
    while (!othersLock(img, LOCK_PERM_BASE + WRITE_BIT)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error('qemu-nbd did not lock the image');
      await new Promise((r) => setTimeout(r, 20));
    }
    await expect(FileBlockDevice.open(img, 'disk')).rejects.toThrow(/^EBUSY: cannot front .*disk\.img: it is in use: another program .*"write"/);
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await gone;
    const dev = await FileBlockDevice.open(img, 'disk');
    await dev.close();
  });

  it('a second engine (another helper) cannot front an image the first one fronts', async () => {
    const img = makeImage(dir, 'disk.img', MiB);
    const first = createEmbeddedEngine({ params: SMALL_PARAMS });
    const second = createEmbeddedEngine({ params: SMALL_PARAMS });
    try {
      await first.addDevice({ path: img, name: 'disk' });
      await expect(second.addDevice({ path: img, name: 'disk' })).rejects.toThrow(/^EBUSY: cannot front .*: it is in use/);
      expect(second.listDevices()).toEqual([]);
    } finally {
      await first.close();
      await second.close();
    }
  });
});
