/** Node.js system errors -> BlksnapError with the same errno name where we know it. */
import { BlksnapError, isErrnoName } from '../abi/errno.js';

export function errnoOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** Re-throws a Node.js fs error as a BlksnapError with a plain message about `what`. */
export function asBlksnapError(err: unknown, what: string): BlksnapError {
  if (err instanceof BlksnapError) return err;
  const code = errnoOf(err);
  const reason = err instanceof Error ? err.message : String(err);
  if (code === 'ENOTBLK') return new BlksnapError('ENODEV', `${what}: not a block device`);
  if (isErrnoName(code)) return new BlksnapError(code, `${what}: ${reason}`);
  return new BlksnapError('EIO', `${what}: ${reason}`);
}
