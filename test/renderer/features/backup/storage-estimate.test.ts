import { describe, expect, it } from 'vitest';
import { changedSince, estimateStorage } from '../../../../renderer/src/features/backup/storage-estimate.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

describe('changedSince', () => {
  it('counts the blocks whose change number is newer than the given one', () => {
    expect(changedSince(Uint8Array.from([0, 1, 2, 3, 3, 2]), 2)).toBe(2);
    expect(changedSince(Uint8Array.from([0, 1, 2, 3, 3, 2]), 0)).toBe(5);
    expect(changedSince(Uint8Array.from([0, 0]), 0)).toBe(0);
  });
});

describe('estimateStorage', () => {
  it('amplifies each changed 64 KiB block to a 256 KiB chunk and leaves room for twice that', () => {
    // 1000 blocks x 256 KiB = 250 MiB predicted; x2 = 500 MiB.
    const e = estimateStorage([{ device: 'd', sizeBytes: 10 * GiB, blockSize: 64 * KiB, changedBlocks: 1000 }]);
    expect(e.predictedBytes).toBe(1000 * 256 * KiB);
    expect(e.limitBytes).toBe(500 * MiB);
    expect(e.changedBlocks).toBe(1000);
  });

  it('uses the block size when blocks are larger than a chunk, and adds the devices up', () => {
    const e = estimateStorage([
      { device: 'a', sizeBytes: 10 * GiB, blockSize: MiB, changedBlocks: 100 },
      { device: 'b', sizeBytes: 10 * GiB, blockSize: 64 * KiB, changedBlocks: 400 },
    ]);
    expect(e.predictedBytes).toBe(100 * MiB + 100 * MiB);
    expect(e.limitBytes).toBe(400 * MiB);
  });

  it('never suggests less than 64 MiB, even with no change', () => {
    expect(estimateStorage([{ device: 'd', sizeBytes: GiB, blockSize: 64 * KiB, changedBlocks: 0 }]).limitBytes).toBe(64 * MiB);
  });

  it('never suggests more than the devices hold (a device fully rewritten)', () => {
    const e = estimateStorage([{ device: 'd', sizeBytes: 512 * MiB, blockSize: 64 * KiB, changedBlocks: 8192 }]);
    expect(e.limitBytes).toBe(512 * MiB);
  });
});
