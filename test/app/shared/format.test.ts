import { describe, expect, it } from 'vitest';
import { errnoLabel, formatBytes } from '../../../app/shared/format.js';
import { ERRNO } from '../../../engine/abi/errno.js';

describe('format', () => {
  it('formats bytes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(64 * 1024 * 1024)).toBe('64 MiB');
    expect(formatBytes(200 * 1024 ** 3)).toBe('200 GiB');
    expect(formatBytes(-1)).toBe('—');
  });

  it('names every errno of engine/abi, negative or positive', () => {
    for (const [name, num] of Object.entries(ERRNO)) {
      expect(errnoLabel(-num)).toBe(name);
      expect(errnoLabel(num)).toBe(name);
    }
    expect(errnoLabel(0)).toBe('');
    expect(errnoLabel(-999)).toBe('errno 999');
  });
});
