/**
 * Names of the negative error codes the driver records (snapshotinfo error_code),
 * from the protocol's errno table (the driver ABI's).
 */
import { errnoName } from '../../engine/protocol/errno.js';

/** "ENOSPC" for -28 or 28; "" for 0; "E<n>" for a number without a name. */
export function errnoNameOf(code: number): string {
  if (code === 0) return '';
  return errnoName(code) ?? `E${Math.abs(code)}`;
}
