/**
 * The holes of a sparse image file, found with lseek(SEEK_DATA / SEEK_HOLE)
 * through koffi (Node has no binding for them). Synchronous calls on the main
 * thread: each is one cheap system call that does not touch the data.
 */
import koffi from 'koffi';
import { BlksnapError, errnoName } from '../abi/errno.js';
import type { BlockExtent } from './block-device.js';

const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;

type LseekFn = (fd: number, offset: number, whence: number) => number | bigint;
let cachedLseek: LseekFn | undefined;

function lseek(): LseekFn {
  if (!cachedLseek) {
    const libc = koffi.load('libc.so.6');
    cachedLseek = libc.func('int64_t lseek(int fd, int64_t offset, int whence)') as unknown as LseekFn;
  }
  return cachedLseek;
}

/** lseek(fd, offset, whence), or null when there is no data/hole at or after offset (ENXIO). */
function seek(fd: number, offset: number, whence: number, what: string): number | null {
  const r = Number(lseek()(fd, offset, whence));
  if (r >= 0) return r;
  const n = koffi.errno();
  if (n === ENXIO) return null;
  throw new BlksnapError(errnoName(n) ?? 'EIO', `${what}: cannot find the holes of the file (lseek failed, errno ${n})`);
}

/** Appends a run, merging it with the previous one of the same kind. */
export function pushExtent(out: BlockExtent[], offset: number, length: number, hole: boolean): void {
  if (length <= 0) return;
  const last = out[out.length - 1];
  if (last !== undefined && last.hole === hole && last.offset + last.length === offset) last.length += length;
  else out.push({ offset, length, hole });
}

/**
 * Data and holes of [offset, offset+length) of the open regular file `fd`
 * (whose size is at least offset+length). Hole edges come from the file system
 * (its block size); a file system without hole support reports all data.
 * Stops once it has `maxRuns` runs (two lseek calls per data run found).
 */
export function fileExtents(fd: number, offset: number, length: number, what: string, maxRuns = Infinity): BlockExtent[] {
  const end = offset + length;
  const out: BlockExtent[] = [];
  let pos = offset;
  while (pos < end && out.length < maxRuns) {
    const data = seek(fd, pos, SEEK_DATA, what);
    if (data === null || data >= end) {
      pushExtent(out, pos, end - pos, true);
      break;
    }
    pushExtent(out, pos, data - pos, true);
    const hole = seek(fd, data, SEEK_HOLE, what) ?? end;
    const dataEnd = Math.min(hole, end);
    pushExtent(out, data, dataEnd - data, false);
    pos = dataEnd;
  }
  return out;
}
