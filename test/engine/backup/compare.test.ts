import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compareImages, describeDifferences } from '../../../engine/backup/compare.js';
import { RawImage } from '../../../engine/backup/image-source.js';
import { KiB, MiB, tempDir } from './sparse-data.js';

let dir = '';
let cleanup: () => Promise<void> = async () => undefined;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('compare'));
});
afterEach(async () => {
  await cleanup();
});

/** Compares two in-memory images through files (the point side is a RawImage, the snapshot side a read function). */
async function compare(a: Buffer, b: Buffer): Promise<ReturnType<typeof describeDifferences>> {
  await writeFile(join(dir, 'a.raw'), a);
  const image = await RawImage.open(join(dir, 'a.raw'));
  try {
    return describeDifferences(await compareImages(image, async (offset, length) => b.subarray(offset, offset + length)));
  } finally {
    await image.close();
  }
}

describe('compare a point with the snapshot image', () => {
  it('equal images: no difference', async () => {
    const a = Buffer.alloc(9 * MiB, 7);
    expect(await compare(a, Buffer.from(a))).toBeNull();
  });

  it('names the first three differing ranges (merged across chunk borders) and counts the rest', async () => {
    const a = Buffer.alloc(9 * MiB, 7);
    const b = Buffer.from(a);
    b[100] = 8; // sector 0
    b.fill(9, 4 * MiB - 512, 4 * MiB + 1024); // three sectors across the first 4 MiB chunk border
    b[6 * MiB + 5] = 1;
    b[8 * MiB] = 1;
    b[8 * MiB + 4 * KiB] = 1;
    expect(await compare(a, b)).toBe(`bytes 0-511, ${4 * MiB - 512}-${4 * MiB + 1023} and ${6 * MiB}-${6 * MiB + 511} (and 2 more differing 512-byte sectors)`);
  });

  it('a snapshot image that returns too few bytes is an EIO', async () => {
    await writeFile(join(dir, 'a.raw'), Buffer.alloc(MiB));
    const image = await RawImage.open(join(dir, 'a.raw'));
    await expect(compareImages(image, async () => Buffer.alloc(10))).rejects.toThrow(/EIO: the snapshot image returned 10 bytes at 0/);
    await image.close();
  });
});
