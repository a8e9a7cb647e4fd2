import { describe, expect, it } from 'vitest';
import { calculateTrackingBlock, CbtMap, DEFAULT_PARAMS, resolveParams } from '../../../engine/core/index.js';

const TiB_SECTORS = 2 ** 40 / 512;

describe('tracking block size (cbt_map_calculate_block_size)', () => {
  it('grows the block until the count fits, up to the maximum shift', () => {
    // 1 GiB: 64 KiB blocks -> 16384 blocks
    expect(calculateTrackingBlock(2 ** 30 / 512, DEFAULT_PARAMS)).toEqual({ shift: 16, count: 16384 });
    // 1 TiB: 64 KiB would be 16M blocks > 2M, so 512 KiB blocks -> 2M
    expect(calculateTrackingBlock(TiB_SECTORS, DEFAULT_PARAMS)).toEqual({ shift: 19, count: 2097152 });
    // 1 PiB stops at the maximum shift (64 MiB) even though the count exceeds the maximum
    expect(calculateTrackingBlock(TiB_SECTORS * 1024, DEFAULT_PARAMS)).toEqual({ shift: 26, count: 16777216 });
    // a partial last block counts
    expect(calculateTrackingBlock(129, DEFAULT_PARAMS)).toEqual({ shift: 16, count: 2 });
  });
});

describe('CbtMap', () => {
  const params = resolveParams({ trackingBlockMinimumShift: 12 });

  it('starts with previous 0 / active 1 and marks writes with the active number', () => {
    const m = new CbtMap(64, params); // 8 blocks of 4 KiB
    expect([m.snapNumberPrevious, m.snapNumberActive, m.blkCount]).toEqual([0, 1, 8]);
    m.set(7, 2); // sectors 7..8: blocks 0 and 1
    expect([...m.writeMap]).toEqual([1, 1, 0, 0, 0, 0, 0, 0]);
    expect([...m.readMap]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    m.switch();
    expect([m.snapNumberPrevious, m.snapNumberActive]).toEqual([1, 2]);
    expect([...m.readMap]).toEqual([1, 1, 0, 0, 0, 0, 0, 0]);
    m.setBoth(16, 8); // block 2
    expect(m.writeMap[2]).toBe(2);
    expect(m.readMap[2]).toBe(1);
  });

  it('a write past the end corrupts the map (cbt_map_set); set_both only fails', () => {
    const m = new CbtMap(64, params);
    expect(() => m.setBoth(60, 8)).toThrow(/EINVAL/);
    expect(m.isCorrupted).toBe(false);
    expect(m.writeMap[7]).toBe(1); // blocks up to the end were marked, as in the module
    expect(() => m.set(60, 8)).toThrow(/EINVAL/);
    expect(m.isCorrupted).toBe(true);
    const gen = m.generationId;
    m.reset(64);
    expect(m.isCorrupted).toBe(false);
    expect(m.generationId).not.toBe(gen);
  });

  it('the 255th switch restarts the numbers at 1, clears the write table and changes the generation', () => {
    const m = new CbtMap(64, params);
    const gen = m.generationId;
    for (let i = 1; i <= 254; i++) m.switch();
    expect([m.snapNumberPrevious, m.snapNumberActive, m.generationId]).toEqual([254, 255, gen]);
    m.set(0, 1);
    const read = [...m.readMap];
    m.switch();
    expect([m.snapNumberPrevious, m.snapNumberActive]).toEqual([255, 1]);
    expect(m.generationId).not.toBe(gen);
    expect([...m.writeMap].every((x) => x === 0)).toBe(true);
    expect([...m.readMap]).toEqual(read);
  });
});
