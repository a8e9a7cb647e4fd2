/**
 * Devices past 2 GiB (and exact multiples of 4 GiB) must be sized with full 53-bit
 * arithmetic: a 32-bit shift once turned a 40 GiB device into a wrong chunk count
 * and a 4 GiB device into a zero-block CBT map. Sparse images cost no disk space.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import { tempDir } from './helpers.js';

const GiB = 2 ** 30;

describe('engine/core on large sparse devices', () => {
  let engine: EmbeddedEngine | null = null;
  let dir = '';
  afterEach(async () => {
    await engine?.close();
    engine = null;
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const size of [4 * GiB, 40 * GiB, 1024 * GiB]) {
    it(`sizes CBT and chunks, and snapshots the last sector, of a ${size / GiB} GiB device`, async () => {
      dir = tempDir('large');
      const img = path.join(dir, 'big.img');
      fs.closeSync(fs.openSync(img, 'wx'));
      fs.truncateSync(img, size);
      engine = createEmbeddedEngine();
      await engine.addDevice({ path: img, name: 'big' });
      await engine.attach('big');
      const info = await engine.cbtInfo('big');
      expect(info.deviceCapacity).toBe(size);
      expect(info.blockCount * info.blockSize).toBeGreaterThanOrEqual(size);
      expect(info.blockCount).toBeLessThanOrEqual(2097152);

      const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'diff'), limitSectors: 4096 });
      await engine.snapshotAdd(id, 'big');
      await engine.snapshotTake(id);
      const last = size - 4096;
      await engine.device('big').write(last, Buffer.alloc(4096, 0xab));
      const { image } = await engine.snapshotInfo('big');
      expect((await engine.image(image).read(last, 4096)).equals(Buffer.alloc(4096, 0))).toBe(true);
      expect((await engine.device('big').read(last, 4096)).equals(Buffer.alloc(4096, 0xab))).toBe(true);
      const map = await engine.cbtMap('big', info.blockCount - 1, 1);
      expect(map[0]).toBe(0); // written after take: only in the active table, not in the read table
      await engine.snapshotDestroy(id);
    });
  }
});
