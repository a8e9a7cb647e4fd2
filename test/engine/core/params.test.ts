import { describe, expect, it } from 'vitest';
import { DEFAULT_PARAMS, resolveParams } from '../../../engine/core/index.js';

describe('module parameters', () => {
  it('has the seed defaults and fixes a maximum below its minimum (parameters_init)', () => {
    expect(DEFAULT_PARAMS).toEqual({
      trackingBlockMinimumShift: 16,
      trackingBlockMaximumCount: 2097152,
      trackingBlockMaximumShift: 26,
      chunkMinimumShift: 18,
      chunkMaximumCountShift: 40,
      chunkMaximumShift: 26,
      chunkMaximumInQueue: 16,
      freeDiffBufferPoolSize: 128,
      diffStorageMinimum: 2097152,
    });
    const p = resolveParams({ trackingBlockMinimumShift: 20, trackingBlockMaximumShift: 18, chunkMinimumShift: 20, chunkMaximumShift: 12 });
    expect(p.trackingBlockMaximumShift).toBe(20);
    expect(p.chunkMaximumShift).toBe(20);
    expect(() => resolveParams({ chunkMinimumShift: 3 })).toThrow(/chunkMinimumShift must be an integer in \[9, 30\], got 3/);
  });
});
