/**
 * Holes and zero clusters must read as zeroes whatever the memory or the target held
 * before: a reader that leaves a hole "as it was", a backup that reuses a buffer
 * without zeroing the partial holes in it, or a restore that skips zero runs on an
 * existing target would all leave stale bytes where the image has zeroes. Every
 * buffer and target here starts full of 0xAA, so such a bug shows as 0xAA bytes.
 */
import { randomFillSync } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { backupPoint } from '../../../engine/backup/backup-point.js';
import { RawImage } from '../../../engine/backup/image-source.js';
import { openImage } from '../../../engine/backup/qcow2-reader.js';
import { Qcow2Writer } from '../../../engine/backup/qcow2-writer.js';
import { restorePoint } from '../../../engine/backup/restore.js';
import { KiB, MiB, tempDir, writeAll } from './sparse-data.js';

const STALE = 0xaa;
let dir = '';
let cleanup: () => Promise<void> = async () => undefined;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('zero-fill'));
});
afterEach(async () => {
  await cleanup();
});

/** The first offset where a and b differ, or -1. */
function firstDifference(a: Buffer, b: Buffer): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : Math.min(a.length, b.length);
}

describe('holes and zero clusters read as zeroes over stale memory', () => {
  it('the qcow2 reader zero-fills unallocated clusters, zero clusters over a backing file, and the part past a shorter backing file', async () => {
    const cs = 64 * KiB;
    // base (4 MiB): data everywhere
    const base = randomFillSync(Buffer.alloc(4 * MiB));
    await writeAll(await Qcow2Writer.create({ path: join(dir, 'base.qcow2'), virtualSize: base.length }), base);
    // top (6 MiB) over base: cluster 3 becomes zeroes (a zero cluster), 4 MiB-6 MiB past base's end reads zeroes
    const top = Buffer.concat([base, Buffer.alloc(2 * MiB)]);
    top.fill(0, 3 * cs, 4 * cs);
    randomFillSync(top, 5 * cs, cs);
    const w = await Qcow2Writer.create({ path: join(dir, 'top.qcow2'), virtualSize: top.length, backing: { file: 'base.qcow2', format: 'qcow2' } });
    await w.write(3 * cs, top.subarray(3 * cs, 6 * cs));
    await w.finish();
    // a standalone image with unallocated clusters between data
    const lone = Buffer.alloc(2 * MiB);
    randomFillSync(lone, 0, cs);
    randomFillSync(lone, 10 * cs + 512, 512); // one sector of data, the rest of the cluster zero
    await writeAll(await Qcow2Writer.create({ path: join(dir, 'lone.qcow2'), virtualSize: lone.length }), lone);

    for (const [file, expected] of [['top.qcow2', top], ['lone.qcow2', lone]] as const) {
      const image = await openImage(join(dir, file), 'qcow2');
      try {
        const got = Buffer.alloc(expected.length + 1024, STALE);
        await image.readInto(0, expected.length, got, 512); // at an offset, around stale bytes
        expect(firstDifference(got.subarray(512, 512 + expected.length), expected), file).toBe(-1);
        expect(got[511]).toBe(STALE); // nothing written outside the range asked for
        expect(got[512 + expected.length]).toBe(STALE);
        // and in small unaligned pieces
        const piece = Buffer.alloc(3000, STALE);
        for (const at of [3 * cs - 1000, 5 * cs - 100, 4 * MiB - 1500, 10 * cs + 100]) {
          if (at + piece.length > expected.length) continue;
          piece.fill(STALE);
          await image.readInto(at, piece.length, piece, 0);
          expect(firstDifference(piece, expected.subarray(at, at + piece.length)), `${file} at ${at}`).toBe(-1);
        }
      } finally {
        await image.close();
      }
    }
  });

  it('a full backup of a sparse source zero-fills the partial holes of the buffers it reuses, and its restore equals the source', async () => {
    // 48 MiB: 16 MiB of random data first (so the reused buffers hold data), then every
    // 64 KiB cluster has 4 KiB of data and 60 KiB of hole; whole-hole clusters between
    const size = 48 * MiB;
    const cs = 64 * KiB;
    const take = Buffer.alloc(size);
    randomFillSync(take, 0, 16 * MiB);
    for (let at = 16 * MiB; at < size; at += cs) if ((at / cs) % 3 !== 0) randomFillSync(take, at, 4 * KiB);
    const path = join(dir, 'sparse.raw');
    const fh = await open(path, 'w');
    await fh.truncate(size);
    await fh.write(take, 0, 16 * MiB, 0);
    for (let at = 16 * MiB; at < size; at += cs) if ((at / cs) % 3 !== 0) await fh.write(take, at, 4 * KiB, at);
    await fh.close();
    const source = await RawImage.open(path);
    try {
      const cbt = { generationId: 'g', changeNumber: 1, blockSize: cs };
      const { manifest } = await backupPoint({ dir: join(dir, 'chain'), source, device: { path: '/dev/vdz', size }, cbt, cbtMap: new Uint8Array(size / cs).fill(1), kind: 'full' });
      // restore onto nothing stale: a new file; then read the point itself into stale memory
      const restored = join(dir, 'restored.raw');
      await restorePoint(join(dir, 'chain'), manifest.id, restored);
      expect(firstDifference(await readFile(restored), take)).toBe(-1);
      const image = await openImage(join(dir, 'chain', manifest.image.file), 'qcow2');
      try {
        const got = Buffer.alloc(size, STALE);
        await image.readInto(0, size, got, 0);
        expect(firstDifference(got, take)).toBe(-1);
      } finally {
        await image.close();
      }
    } finally {
      await source.close();
    }
  });
});
