/** Formatting helpers shared by the UI and logs (pure). */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** 1536 -> "1.5 KiB"; 0 -> "0 B". Binary units, at most one decimal (none for bytes). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '—';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${value} B`;
  const text = value >= 100 ? value.toFixed(0) : value.toFixed(1).replace(/\.0$/, '');
  return `${text} ${UNITS[unit]}`;
}

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Errno number (positive or negative) -> name mirror, for snapshotinfo error codes. */
const ERRNO_BY_NUMBER: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  3: 'ESRCH',
  4: 'EINTR',
  5: 'EIO',
  6: 'ENXIO',
  7: 'E2BIG',
  9: 'EBADF',
  11: 'EAGAIN',
  12: 'ENOMEM',
  13: 'EACCES',
  14: 'EFAULT',
  16: 'EBUSY',
  17: 'EEXIST',
  19: 'ENODEV',
  20: 'ENOTDIR',
  21: 'EISDIR',
  22: 'EINVAL',
  25: 'ENOTTY',
  27: 'EFBIG',
  28: 'ENOSPC',
  30: 'EROFS',
  34: 'ERANGE',
  36: 'ENAMETOOLONG',
  38: 'ENOSYS',
  40: 'ELOOP',
  61: 'ENODATA',
  71: 'EPROTO',
  95: 'EOPNOTSUPP',
  110: 'ETIMEDOUT',
  114: 'EALREADY',
  125: 'ECANCELED',
};

/** -28 -> "ENOSPC"; 0 -> ""; unknown -> "errno 99". */
export function errnoLabel(code: number): string {
  if (code === 0) return '';
  return ERRNO_BY_NUMBER[Math.abs(code)] ?? `errno ${Math.abs(code)}`;
}

/** "2026-12-02 07:30:12" in local time: a date with the time, for records that outlive a day. */
export function formatDateTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
