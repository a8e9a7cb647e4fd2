import { describe, expect, it } from 'vitest';
import { bytesToSectors, formatBytes, parseRange, parseSize, parseTimeout } from '../../../engine/cli/values.js';

describe('CLI values', () => {
  it('parses sizes with binary suffixes', () => {
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('64K')).toBe(65536);
    expect(parseSize('10m')).toBe(10 * 1024 * 1024);
    expect(parseSize('1G')).toBe(1024 ** 3);
    expect(parseSize('2GiB')).toBe(2 * 1024 ** 3);
    expect(parseSize('1T')).toBe(1024 ** 4);
    expect(parseSize('1.5G')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('0.5K')).toBe(512);
    for (const bad of ['', 'G', '-1', '1X', '99999999999T', '1.2.3M']) expect(() => parseSize(bad), bad).toThrow(/EINVAL/);
    expect(() => parseSize('0.3K', 'limit')).toThrow(/limit is not a whole number of bytes/);
  });

  it('formats bytes the way lsblk does', () => {
    expect(formatBytes(512)).toBe('512B');
    expect(formatBytes(64 * 1024 ** 2)).toBe('64M');
    expect(formatBytes(1.5 * 1024 ** 3)).toBe('1.5G');
    expect(formatBytes(2 * 1024 ** 4)).toBe('2T');
  });

  it('converts bytes to sectors rounding up', () => {
    expect(bytesToSectors(1024 ** 3)).toBe(2097152);
    expect(bytesToSectors(513)).toBe(2);
  });

  it('parses SECTOR:COUNT ranges', () => {
    expect(parseRange('2048:8')).toEqual({ offset: 2048, count: 8 });
    for (const bad of ['2048', '1:0', 'a:b', '1:2:3', '-1:2']) expect(() => parseRange(bad), bad).toThrow(/EINVAL/);
  });

  it('parses timeouts', () => {
    expect(parseTimeout('1000')).toBe(1000);
    expect(() => parseTimeout('1s')).toThrow(/EINVAL/);
  });
});
