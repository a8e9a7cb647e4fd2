/**
 * The heatmap's predicted size is what the backup layer will count: the renderer
 * cannot import engine/backup (layering), so its predictedIncrementBytes is checked
 * against engine/backup's changedBlockCount x changedBytes, and against the manifest
 * of a real incremental backup point.
 */
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backupPoint } from '../../../../engine/backup/backup-point.js';
import { changedBlockCount, changedBytes } from '../../../../engine/backup/changed-bytes.js';
import { predictedIncrementBytes } from '../../../../renderer/src/features/heatmap/aggregate.js';
import { CbtDisk, readerOf } from '../../../engine/backup/cbt-disk.js';
import { KiB, MiB, tempDir } from '../../../engine/backup/sparse-data.js';

describe('predicted size: heatmap and backup layer agree', () => {
  it('on random maps, change numbers, block sizes and device sizes that end inside the last block', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 9, max: 20 }),
        fc.integer({ min: 1, max: 1 << 20 }),
        (map, since, log2, tail) => {
          const blockSize = 2 ** log2;
          const capacity = (map.length - 1) * blockSize + (tail % blockSize || blockSize);
          const engine = changedBytes(changedBlockCount(map, since), blockSize, capacity);
          expect(predictedIncrementBytes(map, since, blockSize, capacity)).toBe(engine);
        },
      ),
    );
  });

  it('the changed bytes of a real incremental point are what the heatmap predicted from its CBT map', async () => {
    const { dir, cleanup } = await tempDir('predict');
    try {
      // 16 MiB + 4 KiB: the last 64 KiB block is mostly past the end
      const disk = new CbtDisk(64 * KiB, 16 * MiB + 4 * KiB, 3);
      const full = disk.take();
      const chainDir = join(dir, 'chain');
      const req = { dir: chainDir, source: readerOf(full.image), device: disk.device, cbt: full.cbt, cbtMap: full.cbtMap };
      await backupPoint({ ...req, kind: 'full' });
      disk.changeBlocks(0.05, 11);
      disk.write(16 * MiB, Buffer.alloc(4 * KiB, 7)); // the short last block
      const take = disk.take();
      const predicted = predictedIncrementBytes(take.cbtMap, full.cbt.changeNumber, take.cbt.blockSize, disk.device.size);
      const { manifest } = await backupPoint({ ...req, source: readerOf(take.image), cbt: take.cbt, cbtMap: take.cbtMap, kind: 'incremental', sha256: false });
      expect(changedBytes(manifest.sizes.changedBlocks, manifest.cbt.blockSize, manifest.device.size)).toBe(predicted);
      // and the prediction is not trivially 0 or the whole device
      expect(predicted).toBeGreaterThan(0);
      expect(predicted).toBeLessThan(disk.device.size / 2);
    } finally {
      await cleanup();
    }
  });
});
