import { describe, expect, it } from 'vitest';
import { calculateChunkSize, DEFAULT_PARAMS } from '../../../engine/core/index.js';

const TiB_SECTORS = 2 ** 40 / 512;

describe('chunk size (diff_area_calculate_chunk_size)', () => {
  it('uses the minimum shift unless the count or the minimum I/O size forces it up', () => {
    expect(calculateChunkSize(TiB_SECTORS, 4096, DEFAULT_PARAMS)).toEqual({ shift: 18, count: 4194304 });
    expect(calculateChunkSize(1000, 4096, { ...DEFAULT_PARAMS, chunkMinimumShift: 9 })).toEqual({ shift: 12, count: 125 });
    expect(calculateChunkSize(TiB_SECTORS, 4096, { ...DEFAULT_PARAMS, chunkMaximumCountShift: 20 })).toEqual({ shift: 20, count: 1048576 });
    expect(() => calculateChunkSize(TiB_SECTORS, 4096, { ...DEFAULT_PARAMS, chunkMaximumCountShift: 10 })).toThrow(/EFAULT/);
  });
});
