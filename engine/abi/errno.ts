/**
 * Linux errno values the blksnap ABI can return, by name. Errors cross every
 * boundary (driver -> helper -> protocol -> app) as the errno *name*, with the
 * number alongside, so the same code means the same thing for both drivers.
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENOTTY: 25,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENODATA: 61,
  EPROTO: 71,
  ELOOP: 40,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
  EALREADY: 114,
  ECANCELED: 125,
} as const;

export type ErrnoName = keyof typeof ERRNO;

const BY_NUMBER = new Map<number, ErrnoName>(
  (Object.entries(ERRNO) as [ErrnoName, number][]).map(([name, num]) => [num, name]),
);

/** The errno name for a (positive or negative) errno number, or undefined. */
export function errnoName(num: number): ErrnoName | undefined {
  return BY_NUMBER.get(Math.abs(num));
}

export function isErrnoName(value: unknown): value is ErrnoName {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERRNO, value);
}

/**
 * The one error type of the blksnap drivers: an errno name as the kernel module
 * would return it, and a plain message for an administrator.
 */
export class BlksnapError extends Error {
  readonly errno: ErrnoName;
  readonly errnoNumber: number;

  constructor(errno: ErrnoName, message: string) {
    super(`${errno}: ${message}`);
    this.name = 'BlksnapError';
    this.errno = errno;
    this.errnoNumber = ERRNO[errno];
  }
}

export function isBlksnapError(err: unknown): err is BlksnapError {
  return err instanceof BlksnapError;
}
