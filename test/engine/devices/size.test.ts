import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatSize, parseSize } from '../../../engine/devices/size.js';

describe('parseSize', () => {
  it('plain bytes and binary suffixes, case-insensitive, with B/iB', () => {
    expect(parseSize('512')).toBe(512);
    expect(parseSize('4k')).toBe(4096);
    expect(parseSize('64M')).toBe(64 * 1024 ** 2);
    expect(parseSize('64MiB')).toBe(64 * 1024 ** 2);
    expect(parseSize('1.5G')).toBe(1.5 * 1024 ** 3);
    expect(parseSize(' 2 tb ')).toBe(2 * 1024 ** 4);
    expect(parseSize(1024)).toBe(1024);
  });

  it('rejects garbage, negatives and fractions of a byte with EINVAL', () => {
    for (const bad of ['', 'M', '-1', '1.5', '0.1K', '12X', '1e3', '10 MB extra']) {
      expect(() => parseSize(bad), bad).toThrow(/EINVAL/);
    }
    expect(() => parseSize(-5)).toThrow(/EINVAL/);
    expect(() => parseSize('99999999999T')).toThrow(/EINVAL/);
  });

  it('round-trips integers with every suffix', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4096 }), fc.constantFrom(['', 1], ['K', 1024], ['M', 1024 ** 2], ['G', 1024 ** 3]), (n, [s, m]) => {
        expect(parseSize(`${n}${s}`)).toBe(n * (m as number));
      }),
    );
  });
});

describe('formatSize', () => {
  it('uses binary units', () => {
    expect(formatSize(512)).toBe('512 B');
    expect(formatSize(1536)).toBe('1.5 KiB');
    expect(formatSize(64 * 1024 ** 2)).toBe('64 MiB');
    expect(formatSize(274877906944)).toBe('256 GiB');
  });
});
