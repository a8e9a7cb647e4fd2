import { describe, expect, it } from 'vitest';
import { legendSteps } from '../../../../renderer/src/features/heatmap/legend-steps.js';

describe('legendSteps', () => {
  it('spreads up to six numbers from the lowest coloured one to the newest, ending with the newest', () => {
    expect(legendSteps(3, null)).toEqual([1, 2, 3]);
    expect(legendSteps(11, null)).toEqual([1, 3, 5, 7, 9, 11]);
    expect(legendSteps(200, null).at(-1)).toBe(200);
    expect(legendSteps(200, null)).toHaveLength(6);
  });

  it('starts after N in "changed since N" mode (live default: only the active number)', () => {
    expect(legendSteps(4, 3)).toEqual([4]);
    expect(legendSteps(6, 2)).toEqual([3, 4, 5, 6]);
  });

  it('shows one step when nothing is newer than the lowest coloured number', () => {
    expect(legendSteps(0, null)).toEqual([1]);
    expect(legendSteps(2, 5)).toEqual([6]);
  });
});
