import { describe, expect, it } from 'vitest';
import { legendNumbers, parseSinceN, presentNumbers } from '../../../../renderer/src/features/heatmap/present-numbers.js';

describe('change numbers present in the map', () => {
  it('lists the distinct non-zero numbers, ascending', () => {
    expect(presentNumbers(Uint8Array.from([0, 5, 1, 5, 0, 3, 255]))).toEqual([1, 3, 5, 255]);
    expect(presentNumbers(new Uint8Array(4))).toEqual([]);
  });

  it('the legend lists only present numbers above N, at most six, always the highest', () => {
    expect(legendNumbers([1, 3, 5], null)).toEqual([1, 3, 5]);
    expect(legendNumbers([1, 3, 5], 3)).toEqual([5]);
    const many = legendNumbers([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], null);
    expect(many).toHaveLength(6);
    expect(many[0]).toBe(1);
    expect(many[5]).toBe(10);
    for (const n of many) expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).toContain(n);
  });

  it('N accepts 0 or a present number; anything else is an error naming the numbers that exist', () => {
    expect(parseSinceN('3', [1, 3, 5])).toEqual({ value: 3 });
    expect(parseSinceN('0', [1, 3, 5])).toEqual({ value: 0 });
    expect(parseSinceN('2', [1, 3, 5])).toEqual({ error: 'No block has change number 2; N is 0 or one of the change numbers in the map: 1, 3, 5.' });
    expect(parseSinceN('1.5', [1, 3])).toEqual({ error: 'N is a whole number: 0 or one of the change numbers in the map: 1, 3.' });
    expect(parseSinceN('-1', [1])).toHaveProperty('error');
    expect(parseSinceN('1', [])).toEqual({ error: 'No block has change number 1; N is 0 (the map holds no change yet).' });
  });
});
