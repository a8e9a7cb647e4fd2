/**
 * The holes of image files (engine/core/file-extents.ts through
 * FileBlockDevice.extents) and of snapshot images (DiffArea.imageExtents through
 * the engine's image device).
 */
import { mkdtemp, open, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileBlockDevice } from '../../../engine/core/file-block-device.js';
import { createEmbeddedEngine } from '../../../engine/core/index.js';

const KiB = 1024;
const MiB = 1024 * KiB;
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'file-extents-test-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function sparseFile(name: string, size: number, runs: [number, number][]): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, '');
  await truncate(path, size);
  const fh = await open(path, 'r+');
  for (const [offset, length] of runs) await fh.write(Buffer.alloc(length, 0x5a), 0, length, offset);
  await fh.close();
  return path;
}

describe('FileBlockDevice.extents', () => {
  it('reports the file\'s data and holes, clipped to the asked range, and checks the range', async () => {
    const path = await sparseFile('a.img', 8 * MiB, [[MiB, 64 * KiB], [6 * MiB, 4 * KiB]]);
    const dev = await FileBlockDevice.open(path, 'a');
    try {
      expect(await dev.extents(0, 8 * MiB)).toEqual([
        { offset: 0, length: MiB, hole: true },
        { offset: MiB, length: 64 * KiB, hole: false },
        { offset: MiB + 64 * KiB, length: 5 * MiB - 64 * KiB, hole: true },
        { offset: 6 * MiB, length: 4 * KiB, hole: false },
        { offset: 6 * MiB + 4 * KiB, length: 2 * MiB - 4 * KiB, hole: true },
      ]);
      // Starting inside a data run and ending inside a hole.
      expect(await dev.extents(MiB + 32 * KiB, 64 * KiB)).toEqual([
        { offset: MiB + 32 * KiB, length: 32 * KiB, hole: false },
        { offset: MiB + 64 * KiB, length: 32 * KiB, hole: true },
      ]);
      // A range that ends exactly at the end of the file, all hole.
      expect(await dev.extents(7 * MiB, MiB)).toEqual([{ offset: 7 * MiB, length: MiB, hole: true }]);
      await expect(dev.extents(8 * MiB - 512, 1024)).rejects.toThrow(/is beyond the capacity/);
    } finally {
      await dev.close();
    }
  });

  it('stops after maxRuns runs, each exact (NBD REQ_ONE asks for one), and extentsNow answers the same at once', async () => {
    const path = await sparseFile('b.img', 8 * MiB, [[MiB, 64 * KiB], [4 * MiB, 64 * KiB], [6 * MiB, 4 * KiB]]);
    const dev = await FileBlockDevice.open(path, 'b');
    try {
      const all = await dev.extents(0, 8 * MiB);
      expect(all).toHaveLength(7);
      // With maxRuns it stops once it has that many: a prefix of the full answer, every run exact.
      for (const maxRuns of [1, 2, 3]) {
        const some = await dev.extents(0, 8 * MiB, maxRuns);
        expect(some.length).toBeGreaterThanOrEqual(maxRuns);
        expect(some.length).toBeLessThan(all.length);
        expect(some).toEqual(all.slice(0, some.length));
      }
      // Starting inside a data run: that run alone.
      expect(await dev.extents(MiB + 4 * KiB, 7 * MiB - 4 * KiB, 1)).toEqual([{ offset: MiB + 4 * KiB, length: 60 * KiB, hole: false }]);
      expect(dev.extentsNow(0, 8 * MiB)).toEqual(all);
      expect(() => dev.extentsNow(8 * MiB - 512, 1024)).toThrow(/is beyond the capacity/);
    } finally {
      await dev.close();
    }
  });
});

describe('snapshot image extents', () => {
  it('are the original\'s holes at take, with chunks held in the difference area as data', async () => {
    const path = await sparseFile('b.img', 16 * MiB, [[2 * MiB, 128 * KiB]]);
    const engine = createEmbeddedEngine({ params: { chunkMinimumShift: 16, chunkMaximumShift: 16, diffStorageMinimum: 16384 } });
    try {
      await engine.addDevice({ path, name: 'b' });
      const id = await engine.snapshotCreate({ diffStoragePath: join(dir, 'diff.storage'), limitSectors: (16 * MiB) / 512 });
      await engine.snapshotAdd(id, 'b');
      await engine.snapshotTake(id);
      const imageName = engine.listImages()[0]!.name;
      // A write to the original in a hole: its 64 KiB chunk is copied first (data for the image).
      await engine.device('b').write(9 * MiB + 4 * KiB, Buffer.alloc(4 * KiB, 1));
      const image = engine.image(imageName);
      expect(await image.extents!(0, 16 * MiB)).toEqual([
        { offset: 0, length: 2 * MiB, hole: true },
        { offset: 2 * MiB, length: 128 * KiB, hole: false },
        { offset: 2 * MiB + 128 * KiB, length: 7 * MiB - 128 * KiB, hole: true },
        { offset: 9 * MiB, length: 64 * KiB, hole: false },
        { offset: 9 * MiB + 64 * KiB, length: 7 * MiB - 64 * KiB, hole: true },
      ]);
      // The engine device sees the file: the write made only its 4 KiB data.
      expect((await engine.device('b').extents!(9 * MiB, 64 * KiB)).filter((e) => !e.hole)).toEqual([
        { offset: 9 * MiB + 4 * KiB, length: 4 * KiB, hole: false },
      ]);
    } finally {
      await engine.close();
    }
  });
});
