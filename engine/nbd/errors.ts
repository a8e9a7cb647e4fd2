/**
 * Device errors to NBD error values. The NBD protocol allows only a few errno
 * values on the wire (EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP,
 * ESHUTDOWN); everything else becomes the nearest of those, or EIO.
 */
import { constants as osConstants } from 'node:os';
import { isBlksnapError } from '../abi/errno.js';
import {
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOMEM,
  NBD_ENOSPC,
  NBD_ENOTSUP,
  NBD_EOVERFLOW,
  NBD_EPERM,
  NBD_ESHUTDOWN,
} from './constants.js';

const BY_NAME: Readonly<Record<string, number>> = {
  EPERM: NBD_EPERM,
  EACCES: NBD_EPERM,
  EROFS: NBD_EPERM,
  EIO: NBD_EIO,
  ENOMEM: NBD_ENOMEM,
  EINVAL: NBD_EINVAL,
  ERANGE: NBD_EINVAL,
  ENOSPC: NBD_ENOSPC,
  EFBIG: NBD_ENOSPC,
  EDQUOT: NBD_ENOSPC,
  EOVERFLOW: NBD_EOVERFLOW,
  EOPNOTSUPP: NBD_ENOTSUP,
  ENOTSUP: NBD_ENOTSUP,
  ESHUTDOWN: NBD_ESHUTDOWN,
};

/** The errno name carried by a BlksnapError or a Node system error, if any. */
function errnoNameOf(err: unknown): string | undefined {
  if (isBlksnapError(err)) return err.errno;
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** The NBD error value to answer a request whose device operation failed with `err`. */
export function nbdErrorFor(err: unknown): number {
  const name = errnoNameOf(err);
  if (name === undefined) return NBD_EIO;
  return BY_NAME[name] ?? NBD_EIO;
}

/** errno names by number (Linux's: EOPNOTSUPP and ENOTSUP share one, as do EAGAIN and EWOULDBLOCK). */
const ERRNO_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

/** nbdErrorFor() of a failed system call's errno number (as a thread reports it). */
export function nbdErrorForErrno(errno: number): number {
  return BY_NAME[ERRNO_NAMES.get(errno) ?? ''] ?? NBD_EIO;
}
