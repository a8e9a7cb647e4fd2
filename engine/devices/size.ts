/**
 * Sizes as administrators write them: "64M", "1.5G", "512", "10GiB", "4k".
 * Suffixes are binary (K = 1024) and case-insensitive; a trailing "B" or "iB" is
 * allowed. Pure functions.
 */
import { BlksnapError } from '../abi/errno.js';

const MULTIPLIER: Record<string, number> = {
  '': 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

const SIZE_RE = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i;

/** Bytes of a size string (or a non-negative integer passed through). EINVAL otherwise. */
export function parseSize(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input) || input < 0) throw new BlksnapError('EINVAL', `invalid size ${input}`);
    return input;
  }
  const m = SIZE_RE.exec(input);
  if (!m) throw new BlksnapError('EINVAL', `invalid size "${input}" (examples: 512, 64M, 1.5G, 2T)`);
  const value = Number(m[1]);
  const mult = MULTIPLIER[(m[2] ?? '').toLowerCase()] ?? 1;
  const bytes = value * mult;
  if (!Number.isSafeInteger(bytes)) {
    throw new BlksnapError('EINVAL', `size "${input}" is not a whole number of bytes or is too large`);
  }
  return bytes;
}

/** A short human form with binary units: 1536 -> "1.5 KiB", 67108864 -> "64 MiB". */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = unit === 0 || Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1).replace(/\.?0+$/, '');
  return `${text} ${units[unit]}`;
}
