/**
 * What a form field accepts, checked as typed (pure). Nothing is rounded, clamped or
 * trimmed into something else: a value that cannot be used exactly gets an error in
 * the field's own unit, and the form does not go on with another number.
 */
import { findControlChar } from '../../../app/shared/control-chars.js';

/** The helper's highest write-workload rate (workload.start), in MiB/s. */
export const MAX_RATE_MIBPS = 100_000;

export type Checked<T> = { value: T } | { error: string };

const SECTOR = 512;
const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)$/;

const upper = (s: string): string => `${s[0]?.toUpperCase() ?? ''}${s.slice(1)}`;

/** A number of `unit` above 0 (and at most `max`), as typed. `what`: "the rate". */
export function parseAmount(text: string, what: string, unit: string, max?: number): Checked<number> {
  const t = text.trim();
  if (t === '') return { error: `Enter ${what} in ${unit}.` };
  if (!NUMBER_RE.test(t)) return { error: `"${text}" is not a number: enter ${what} in ${unit} with digits and at most one decimal point (e.g. 64 or 1.5).` };
  const n = Number(t);
  if (n <= 0) return { error: `${upper(what)} must be more than 0 ${unit}, not ${t}.` };
  if (max !== undefined && n > max) return { error: `${upper(what)} can be at most ${max} ${unit}, not ${t}.` };
  return { value: n };
}

/**
 * A size typed in `unit` (`unitBytes` bytes each) -> bytes: more than 0, a whole
 * number of 512-byte sectors (the error names the nearest sizes that are), at most
 * Number.MAX_SAFE_INTEGER bytes (what the contract carries).
 */
export function parseSize(text: string, what: string, unit: string, unitBytes: number): Checked<number> {
  const amount = parseAmount(text, what, unit);
  if ('error' in amount) return amount;
  const t = text.trim();
  const bytes = amount.value * unitBytes;
  if (bytes > Number.MAX_SAFE_INTEGER) return { error: `${upper(what)} can be at most ${Math.floor(Number.MAX_SAFE_INTEGER / unitBytes)} ${unit}, not ${t}.` };
  if (!Number.isInteger(bytes) || bytes % SECTOR !== 0) {
    const below = (Math.floor(bytes / SECTOR) * SECTOR) / unitBytes;
    const above = (Math.ceil(bytes / SECTOR) * SECTOR) / unitBytes;
    const nearest = below > 0 ? `${below} ${unit} or ${above} ${unit}` : `${above} ${unit}`;
    return { error: `${t} ${unit} is not a whole number of 512-byte sectors; the nearest that are: ${nearest}.` };
  }
  return { value: bytes };
}

/** An absolute directory path, as typed (spaces included: they are part of a path). */
export function checkDirectory(text: string, what = 'the directory'): Checked<string> {
  if (text === '') return { error: `Enter ${what} as an absolute path (starting with /).` };
  if (!text.startsWith('/')) return { error: `${upper(what)} must be an absolute path starting with /, not "${text}".` };
  const control = findControlChar(text);
  if (control !== null) return { error: `${upper(what)} contains the control character ${control.escaped} at position ${control.index}.` };
  return { value: text };
}

/** Device and image names: what the helper accepts (letters, digits, ".", "_", "-"; 64 at most). */
export function checkDeviceName(text: string, taken: ReadonlySet<string>, free: string): Checked<string> {
  if (text === '') return { error: `Enter a name, e.g. ${free}.` };
  if (text.length > 64) return { error: `A name has at most 64 characters, this one ${text.length}.` };
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(text)) {
    return { error: `"${text}" cannot be a name: use letters, digits, ".", "_" and "-", starting with a letter or digit (e.g. ${free}).` };
  }
  if (taken.has(text)) return { error: `A device named ${text} exists already; ${free} is free.` };
  return { value: text };
}

/** A snapshot's optional name: up to 64 characters, no control characters, no space at either end. */
export function checkSnapshotName(text: string): Checked<string | null> {
  if (text === '') return { value: null };
  if (text.length > 64) return { error: `A snapshot name has at most 64 characters, this one ${text.length}.` };
  if (text.trim() !== text) return { error: 'The name starts or ends with a space; remove it (the name is kept as typed).' };
  const control = findControlChar(text);
  if (control !== null) return { error: `The name contains the control character ${control.escaped} at position ${control.index}.` };
  return { value: text };
}
