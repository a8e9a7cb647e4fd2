/** Parsing of command-line values: sizes with K/M/G/T suffixes and SECTOR:COUNT ranges. */
import { BlksnapError } from '../abi/errno.js';
import type { SectorRange } from '../abi/types.js';

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** "4096", "64K", "10M", "1.5G", "2T" (binary units; an optional trailing "B"/"iB") -> bytes. */
export function parseSize(text: string, what = 'size'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!m) throw new BlksnapError('EINVAL', `${what} must be a number with an optional K, M, G or T suffix (e.g. 512, 64M, 1.5G), got "${text}"`);
  const value = Number(m[1]) * (UNITS[(m[2] ?? '').toUpperCase()] ?? 1);
  if (!Number.isSafeInteger(value)) {
    throw new BlksnapError('EINVAL', Number.isInteger(value) ? `${what} is too large: ${text}` : `${what} is not a whole number of bytes: ${text}`);
  }
  return value;
}

/** Bytes in a short human form with binary units, as lsblk prints them: 64M, 1.5G, 2T, 512B. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T', 'P'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, '');
  return `${text}${units[unit]}`;
}

/** Bytes -> sectors, rounding up. */
export function bytesToSectors(bytes: number): number {
  return Math.ceil(bytes / 512);
}

/** "SECTOR:COUNT" -> a sector range. */
export function parseRange(text: string): SectorRange {
  const m = /^(\d+):(\d+)$/.exec(text.trim());
  if (!m) throw new BlksnapError('EINVAL', `a range is SECTOR:COUNT (e.g. 2048:8), got "${text}"`);
  const offset = Number(m[1]);
  const count = Number(m[2]);
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(count) || count < 1) {
    throw new BlksnapError('EINVAL', `invalid range "${text}": the count must be at least 1`);
  }
  return { offset, count };
}

export function parseTimeout(text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new BlksnapError('EINVAL', `timeout must be milliseconds, got "${text}"`);
  return Number(text);
}
