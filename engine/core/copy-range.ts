/**
 * Copying file bytes inside the kernel: copy_file_range(2) from libc through
 * koffi, run on koffi's worker thread. Copy-on-write uses it to move a chunk's
 * old data from the original straight into the difference storage: the kernel
 * copies page-cache pages once (or shares the blocks, on file systems that
 * can), where a read into memory and a write back out copy every byte twice.
 */
import koffi from 'koffi';
import { errnoName } from '../abi/errno.js';

type CopyFileRangeFn = {
  async: (
    fdIn: number,
    offIn: Buffer,
    fdOut: number,
    offOut: Buffer,
    len: number,
    flags: number,
    cb: (err: unknown, res: number | bigint) => void,
  ) => void;
};

let cached: CopyFileRangeFn | null | undefined;

function loadCopyFileRange(): CopyFileRangeFn | null {
  if (cached === undefined) {
    try {
      const libc = koffi.load('libc.so.6');
      cached = libc.func(
        'int64_t copy_file_range(int fd_in, void *off_in, int fd_out, void *off_out, size_t len, unsigned int flags)',
      ) as unknown as CopyFileRangeFn;
    } catch {
      cached = null;
    }
  }
  return cached;
}

function copyError(errno: number, what: string): Error & { code: string } {
  const name = errnoName(errno) ?? 'EIO';
  return Object.assign(new Error(`${what}: ${name} (errno ${errno})`), { code: name });
}

/** One copy_file_range call; resolves with the bytes copied. */
function copyOnce(fdIn: number, posIn: number, fdOut: number, posOut: number, len: number): Promise<number> {
  const fn = loadCopyFileRange();
  if (fn === null) return Promise.reject(copyError(38, 'copy_file_range is not available'));
  // The kernel reads and advances the offsets through these pointers: one pair per call.
  const offIn = Buffer.alloc(8);
  const offOut = Buffer.alloc(8);
  offIn.writeBigInt64LE(BigInt(posIn));
  offOut.writeBigInt64LE(BigInt(posOut));
  return new Promise((resolve, reject) => {
    fn.async(fdIn, offIn, fdOut, offOut, len, 0, (err, res) => {
      const n = Number(res);
      if (err) reject(Object.assign(new Error(`copy_file_range failed: ${err instanceof Error ? err.message : String(err)}`), { code: 'EIO' }));
      else if (n < 0) reject(copyError(koffi.errno(), `cannot copy ${len} bytes at ${posIn}`));
      else resolve(n);
    });
  });
}

/**
 * Copies `length` bytes from `posIn` of `fdIn` to `posOut` of `fdOut`, looping
 * over short copies. Rejects with an Error whose `code` is the errno name
 * (EXDEV, EINVAL, EOPNOTSUPP where the pair of files does not allow it; ENODATA
 * when the source ends first).
 */
export async function copyRange(fdIn: number, posIn: number, fdOut: number, posOut: number, length: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const n = await copyOnce(fdIn, posIn + done, fdOut, posOut + done, length - done);
    if (n === 0) throw copyError(61, `the source ended ${length - done} bytes early`);
    done += n;
  }
}
