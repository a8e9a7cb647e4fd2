/**
 * Dropping a file's pages from the page cache, for tests of paths that depend on
 * what is cached: fdatasync, then posix_fadvise(POSIX_FADV_DONTNEED) (clean pages
 * only are dropped, hence the sync).
 */
import { closeSync, fdatasyncSync, openSync } from 'node:fs';
import koffi from 'koffi';

const POSIX_FADV_DONTNEED = 4;
type FadviseFn = (fd: number, offset: number, len: number, advice: number) => number;
let fadvise: FadviseFn | undefined;

export function dropFromPageCache(path: string): void {
  fadvise ??= koffi.load('libc.so.6').func('int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)') as unknown as FadviseFn;
  const fd = openSync(path, 'r+');
  try {
    fdatasyncSync(fd);
    const rc = fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    if (rc !== 0) throw new Error(`posix_fadvise failed: ${rc}`);
  } finally {
    closeSync(fd);
  }
}
