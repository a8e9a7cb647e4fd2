import { BlksnapError, isBlksnapError, isErrnoName } from '../abi/errno.js';

/** A Node.js system error (fs) turned into a BlksnapError with the same errno name. */
export function fromNodeError(err: unknown, what: string): BlksnapError {
  if (isBlksnapError(err)) return err;
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (isErrnoName(code)) return new BlksnapError(code, `${what}: ${message}`);
  return new BlksnapError('EIO', `${what}: ${message}`);
}
