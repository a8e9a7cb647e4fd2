import { BlksnapError } from '../abi/errno.js';
import { SECTOR_SIZE } from '../abi/types.js';

/**
 * Checks a byte range of a device: both integers, multiples of the 512-byte sector,
 * and inside the capacity. Throws EINVAL otherwise (before any I/O is issued).
 */
export function checkRange(deviceName: string, capacity: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new BlksnapError('EINVAL', `${deviceName}: invalid range offset=${String(offset)} length=${String(length)}`);
  }
  if (offset % SECTOR_SIZE !== 0 || length % SECTOR_SIZE !== 0) {
    throw new BlksnapError('EINVAL', `${deviceName}: offset ${offset} and length ${length} must be multiples of ${SECTOR_SIZE}`);
  }
  if (offset + length > capacity) {
    throw new BlksnapError('EINVAL', `${deviceName}: range ${offset}+${length} is beyond the capacity ${capacity}`);
  }
}

/** Checks that target[targetOffset, targetOffset+length) exists (EINVAL otherwise). */
export function checkTarget(deviceName: string, target: Buffer, targetOffset: number, length: number): void {
  if (!Number.isSafeInteger(targetOffset) || targetOffset < 0 || targetOffset + length > target.length) {
    throw new BlksnapError('EINVAL', `${deviceName}: the target buffer cannot hold ${length} bytes at ${String(targetOffset)}`);
  }
}

/** A Buffer view of `data` without copying. */
export function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** A shared read-only buffer of zeroes used for write-zeroes and discard. */
export const ZERO_BUFFER_SIZE = 1 << 20;
let zeroes: Buffer | null = null;
export function zeroBuffer(): Buffer {
  if (!zeroes) zeroes = Buffer.alloc(ZERO_BUFFER_SIZE);
  return zeroes;
}
