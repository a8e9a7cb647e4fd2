import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine, FileBlockDevice } from '../../../engine/core/index.js';
import { canUseLoop } from '../../helpers/env.js';
import { expectErrno, makeImage, SMALL_PARAMS, tempDir } from './helpers.js';

const MiB = 1 << 20;
let dir: string;

beforeEach(() => {
  dir = tempDir('bdev');
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('FileBlockDevice on an image file', () => {
  it('reports capacity and block sizes; reads, writes, FUA writes, flush, write-zeroes, discard', async () => {
    const p = makeImage(dir, 'x.img', MiB, 0x11);
    const dev = await FileBlockDevice.open(p, 'x');
    try {
      expect([dev.name, dev.capacity, dev.logicalBlockSize, dev.physicalBlockSize, dev.readOnly]).toEqual(['x', MiB, 512, 4096, false]);
      await dev.write(512, Buffer.alloc(1024, 0x22));
      await dev.write(MiB - 512, new Uint8Array(512).fill(0x33), { fua: true });
      await dev.flush();
      expect((await dev.read(0, 2048)).map((x) => x)).toEqual(
        Buffer.concat([Buffer.alloc(512, 0x11), Buffer.alloc(1024, 0x22), Buffer.alloc(512, 0x11)]),
      );
      const file = fs.readFileSync(p);
      expect(file.subarray(MiB - 512).every((x) => x === 0x33)).toBe(true);
      await dev.writeZeroes(0, 512);
      await dev.discard(4096, 8192);
      const after = fs.readFileSync(p);
      expect(after.subarray(0, 512).every((x) => x === 0)).toBe(true);
      expect(after.subarray(4096, 4096 + 8192).every((x) => x === 0)).toBe(true);
      expect(after[4096 + 8192]).toBe(0x11);
      expect((await dev.read(0, 0)).length).toBe(0);
    } finally {
      await dev.close();
    }
  });

  it('rejects misaligned or out-of-range requests with EINVAL and writes nothing', async () => {
    const p = makeImage(dir, 'x.img', 64 * 1024, 0x11);
    const dev = await FileBlockDevice.open(p, 'x');
    try {
      const before = fs.readFileSync(p);
      await expectErrno(dev.write(1, Buffer.alloc(512)), 'EINVAL');
      await expectErrno(dev.write(0, Buffer.alloc(511)), 'EINVAL');
      await expectErrno(dev.write(64 * 1024, Buffer.alloc(512)), 'EINVAL');
      await expectErrno(dev.write(63 * 1024, Buffer.alloc(2048)), 'EINVAL');
      await expectErrno(dev.write(-512, Buffer.alloc(512)), 'EINVAL');
      await expectErrno(dev.writeZeroes(0, 100), 'EINVAL');
      await expectErrno(dev.discard(64 * 1024 - 512, 1024), 'EINVAL');
      await expectErrno(dev.read(512, 513), 'EINVAL');
      await expectErrno(dev.read(0.5, 512), 'EINVAL');
      expect(fs.readFileSync(p).equals(before)).toBe(true);
      expect(fs.statSync(p).size).toBe(64 * 1024);
    } finally {
      await dev.close();
    }
  });

  it('refuses files that are not a multiple of 512, and what is neither a file nor a block device', async () => {
    await expectErrno(FileBlockDevice.open(makeImage(dir, 'odd.img', 1000), 'o'), 'EINVAL');
    await expectErrno(FileBlockDevice.open(makeImage(dir, 'empty.img', 0), 'e'), 'EINVAL');
    await expectErrno(FileBlockDevice.open(dir, 'd'), 'EINVAL');
    await expectErrno(FileBlockDevice.open(path.join(dir, 'none'), 'n'), 'ENOENT');
  });

  it('fails with ENODEV after close', async () => {
    const dev = await FileBlockDevice.open(makeImage(dir, 'x.img', 4096), 'x');
    await dev.close();
    await expectErrno(dev.read(0, 512), 'ENODEV');
  });
});

describe('a block device (loop device) as an engine device', () => {
  it.skipIf(!canUseLoop)('[root] capacity from the device, exclusive open, tracking and snapshot through a loop device', async () => {
    const backing = makeImage(dir, 'loop.img', 8 * MiB, 0x5a);
    const loop = execFileSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' }).trim();
    const engine = createEmbeddedEngine({ params: SMALL_PARAMS });
    try {
      const info = await engine.addDevice({ path: loop, name: 'loop' });
      expect(info.capacity).toBe(8 * MiB);
      expect(info.devMajor).toBe(7); // the loop driver's major
      // opened O_EXCL: a second exclusive open of the device fails
      await expectErrno(FileBlockDevice.open(loop, 'again'), 'EBUSY');
      const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'diff'), limitSectors: 1 << 16 });
      await engine.snapshotAdd(id, 'loop');
      await engine.snapshotTake(id);
      await engine.device('loop').write(MiB, Buffer.alloc(4096, 0x77), { fua: true });
      const img = engine.image((await engine.snapshotInfo(loop)).image);
      expect((await img.read(MiB, 4096)).every((x) => x === 0x5a)).toBe(true);
      expect((await engine.device('loop').read(MiB, 4096)).every((x) => x === 0x77)).toBe(true);
      const map = await engine.cbtMap('loop', 0, (await engine.cbtInfo('loop')).blockCount);
      expect(map.length).toBe(2048);
      await engine.snapshotDestroy(id);
      await engine.removeDevice('loop');
      // the write reached the backing file through the loop device
      execFileSync('sync');
      const fd = fs.openSync(loop, 'r');
      const buf = Buffer.alloc(4096);
      fs.readSync(fd, buf, 0, 4096, MiB);
      fs.closeSync(fd);
      expect(buf.every((x) => x === 0x77)).toBe(true);
    } finally {
      await engine.close();
      execFileSync('losetup', ['-d', loop]);
    }
  });
});
