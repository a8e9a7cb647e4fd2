/**
 * Reserving real disk space for a file: fallocate(2) with mode 0 (allocate the
 * blocks and extend the size), from libc through koffi, run on koffi's worker
 * thread so a large reservation does not stall the event loop. A file system that
 * cannot reserve (EOPNOTSUPP, as ext2 or FAT answer) says so; the caller then falls
 * back to a sparse file.
 */
import koffi from 'koffi';
import { errnoName } from '../abi/errno.js';

type FallocateFn = ((fd: number, mode: number, offset: number, length: number) => number) & {
  async: (fd: number, mode: number, offset: number, length: number, cb: (err: unknown, res: number) => void) => void;
};

let cached: FallocateFn | null | undefined;

/** `int fallocate64(int, int, off64_t, off64_t)` from libc, or null where it cannot be loaded. */
function loadFallocate(): FallocateFn | null {
  if (cached === undefined) {
    try {
      const libc = koffi.load('libc.so.6');
      cached = libc.func('int fallocate64(int fd, int mode, int64_t offset, int64_t len)') as unknown as FallocateFn;
    } catch {
      cached = null;
    }
  }
  return cached;
}

/** An error shaped like Node's system errors: `code` is the errno name (EIO if unknown). */
function systemError(errno: number, what: string): Error & { code: string } {
  const name = errnoName(errno) ?? 'EIO';
  return Object.assign(new Error(`${what}: ${name} (errno ${errno})`), { code: name });
}

/**
 * Reserves the bytes [offset, offset + length) of the open file `fd` and extends
 * the file to cover them. Rejects with an Error whose `code` is the errno name:
 * ENOSPC when the file system is full, EOPNOTSUPP when it cannot reserve space
 * (or fallocate is not available at all).
 */
export function reserveFileSpace(fd: number, offset: number, length: number): Promise<void> {
  const fn = loadFallocate();
  if (!fn) return Promise.reject(systemError(95, 'fallocate is not available'));
  return new Promise((resolve, reject) => {
    fn.async(fd, 0, offset, length, (err, res) => {
      if (err) reject(Object.assign(new Error(`fallocate failed: ${err instanceof Error ? err.message : String(err)}`), { code: 'EIO' }));
      else if (res < 0) reject(systemError(koffi.errno(), `cannot reserve ${length} bytes at ${offset}`));
      else resolve();
    });
  });
}
