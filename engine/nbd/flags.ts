import type { BlockDevice } from '../core/block-device.js';
import {
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_CACHE,
  NBD_FLAG_SEND_FAST_ZERO,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
} from './constants.js';

/**
 * The transmission flags of an export. Read-only exports advertise READ_ONLY and
 * none of the write features. CAN_MULTI_CONN is safe because every connection to
 * an export reaches the same BlockDevice, whose flush persists every completed
 * write whoever issued it. CACHE is always accepted (a range check); FAST_ZERO is
 * advertised with WRITE_ZEROES and answered ENOTSUP, since every zero write of the
 * engine writes zeroes (it is never faster than a write).
 */
export function transmissionFlags(device: BlockDevice, multiConn: boolean): number {
  let flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_CACHE;
  if (device.readOnly) flags |= NBD_FLAG_READ_ONLY;
  else flags |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
  if (multiConn) flags |= NBD_FLAG_CAN_MULTI_CONN;
  return flags;
}

/** Block-size constraints of an export: minimum, preferred, maximum payload. */
export interface BlockSizes {
  minimum: number;
  preferred: number;
  maximum: number;
}

/**
 * The BlockDevice contract is 512-byte sectors (more if the device's logical block
 * is larger); prefer the physical block, at least 4 KiB.
 */
export function blockSizesFor(device: BlockDevice, maxPayload: number): BlockSizes {
  const minimum = Math.max(512, device.logicalBlockSize);
  const preferred = Math.min(maxPayload, Math.max(4096, device.physicalBlockSize, device.logicalBlockSize));
  return { minimum, preferred, maximum: maxPayload };
}
