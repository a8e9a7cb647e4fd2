import { describe, expect, it } from 'vitest';
import {
  chunkCount,
  expectedCopiedBytes,
  workloadPlan,
} from '../../../../renderer/src/features/storage/cow-estimate.js';
import { suggestedLimitBytes } from '../../../../renderer/src/features/storage/storage-advice.js';
import { GiB, MiB } from '../../fixtures.js';

const KiB = 1024;

describe('copy-on-write estimate', () => {
  it('counts chunks per device, a partial chunk as a whole one', () => {
    expect(chunkCount([GiB], 256 * KiB)).toBe(4096);
    expect(chunkCount([256 * KiB + 512, 512], 256 * KiB)).toBe(3);
  });

  it('copies a whole chunk per small write, not the bytes written', () => {
    // 10 writes of 64 KiB into 1 GiB of 256 KiB chunks: almost surely 10 distinct chunks, 2.5 MiB copied (not 640 KiB)
    const copied = expectedCopiedBytes([GiB], { writtenBytes: 640 * KiB, writeBytes: 64 * KiB, chunkBytes: 256 * KiB });
    expect(copied).toBe(10 * 256 * KiB);
  });

  it('uses the engine\'s chunk size: with 1 MiB chunks the same 10 small writes copy 10 MiB', () => {
    const copied = expectedCopiedBytes([GiB], { writtenBytes: 640 * KiB, writeBytes: 64 * KiB, chunkBytes: MiB });
    expect(copied).toBe(10 * MiB);
    expect(workloadPlan(4, 64 * KiB).chunkBytes).toBe(64 * KiB);
  });

  it('never expects more than the devices have, and nothing without writes', () => {
    const plan = { writtenBytes: 100 * GiB, writeBytes: 64 * KiB, chunkBytes: 256 * KiB };
    expect(expectedCopiedBytes([GiB], plan)).toBe(GiB);
    expect(expectedCopiedBytes([GiB], { ...plan, writtenBytes: 0 })).toBe(0);
    expect(expectedCopiedBytes([], plan)).toBe(0);
  });

  it('saturates: as many writes as chunks touch about 63% of them (1 - 1/e)', () => {
    const copied = expectedCopiedBytes([GiB], { writtenBytes: 4096 * 64 * KiB, writeBytes: 64 * KiB, chunkBytes: 256 * KiB });
    expect(copied / GiB).toBeGreaterThan(0.62);
    expect(copied / GiB).toBeLessThan(0.64);
  });

  it('plans a 10-minute hold at the workload rate', () => {
    expect(workloadPlan(4).writtenBytes).toBe(4 * MiB * 600);
    expect(workloadPlan(4).chunkBytes).toBe(256 * KiB);
  });

  it('the README first session (two 512 MiB disks, 4 MiB/s random for 10 min) is suggested the whole disks, not 154 MiB', () => {
    const sizes = [512 * MiB, 512 * MiB];
    expect(suggestedLimitBytes(sizes)).toBe(154 * MiB);
    expect(suggestedLimitBytes(sizes, workloadPlan(4))).toBe(GiB);
  });

  it('a light load on a large disk keeps the 15% floor; a heavier one gets the copies plus 25%', () => {
    expect(suggestedLimitBytes([100 * GiB], workloadPlan(0.01))).toBe(Math.ceil((100 * GiB * 0.15) / MiB) * MiB);
    // 1 MiB/s for 600 s = 9600 writes of 64 KiB over the 16384 chunks of 4 GiB: 7265 distinct chunks
    // (16384 * (1 - e^(-9600/16384))) = 1816.25 MiB, x1.25 -> 2271 MiB, above 15% (615 MiB)
    expect(suggestedLimitBytes([4 * GiB], workloadPlan(1))).toBe(2271 * MiB);
  });
});
