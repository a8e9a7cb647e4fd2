/**
 * Linux errno numbers of the names in the contract (app/shared ERRNO_CODES), to
 * name the negative error codes the driver records (snapshotinfo error_code).
 */
import type { ErrnoCode } from '../shared/result.js';

const NUMBERS: { [K in ErrnoCode]: number } = {
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
  ELOOP: 40,
  ENODATA: 61,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
  EALREADY: 114,
  ECANCELED: 125,
};

const BY_NUMBER = new Map<number, ErrnoCode>(
  (Object.entries(NUMBERS) as [ErrnoCode, number][]).map(([name, num]) => [num, name]),
);

/** "ENOSPC" for -28 or 28; "" for 0; "E<n>" for a number without a name here. */
export function errnoNameOf(code: number): string {
  if (code === 0) return '';
  return BY_NUMBER.get(Math.abs(code)) ?? `E${Math.abs(code)}`;
}

export function errnoNumberOf(name: ErrnoCode): number {
  return NUMBERS[name];
}
