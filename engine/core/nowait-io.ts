/**
 * I/O on the calling (main) thread for the NBD fast path, without a trip
 * through libuv's thread pool. Each thread-pool request costs a handful of
 * futex wake-ups between the main thread and a worker (measured: about five per
 * request under `qemu-img bench`), more than a 4 KiB copy from the page cache.
 *
 * - readNoWait: preadv2(RWF_NOWAIT) through koffi. The kernel copies from the
 *   page cache or answers EAGAIN at once: it never waits for the disk, so the
 *   event loop is never stalled by it. A short or refused read tells the caller
 *   to read through the thread pool instead.
 * - InlineWritePolicy: buffered writes have no such flag on most file systems
 *   (ext4 answers RWF_NOWAIT with EOPNOTSUPP), so a small write done inline may
 *   wait when the kernel throttles dirty pages or the journal is busy. The policy
 *   allows inline writes only while they stay fast: one that took longer than
 *   `slowMs` and slept in the kernel (the thread's voluntary context switches,
 *   getrusage(RUSAGE_THREAD), went up during it) turns them off for
 *   `backoffMs`, and the thread pool takes them. A write that was only
 *   preempted (a busy machine) does not count: that would turn inline writes
 *   off exactly when the CPU is scarcest.
 */
import { writevSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import koffi from 'koffi';
import { advance, total } from './file-io.js';

const RWF_NOWAIT = 0x00000008;
const EOPNOTSUPP = 95;

type Preadv2Fn = (fd: number, iov: Buffer, iovcnt: number, offset: number, flags: number) => number | bigint;

let preadv2: Preadv2Fn | null | undefined;
/** One iovec (base, length), reused: the calls are synchronous on one thread. */
const IOV = Buffer.alloc(16);
/** Addresses of the buffers read into (koffi.address costs more than the lookup). */
const addresses = new WeakMap<ArrayBufferLike, number>();

function loadPreadv2(): Preadv2Fn | null {
  if (preadv2 === undefined) {
    try {
      const libc = koffi.load('libc.so.6');
      preadv2 = libc.func('int64_t preadv2(int fd, void *iov, int iovcnt, int64_t offset, int flags)') as unknown as Preadv2Fn;
    } catch {
      preadv2 = null;
    }
  }
  return preadv2;
}

function addressOf(buf: Buffer): number {
  let base = addresses.get(buf.buffer);
  if (base === undefined) {
    // The address of byte 0 of the ArrayBuffer: a Buffer's backing store never moves.
    base = Number(koffi.address(buf)) - buf.byteOffset;
    addresses.set(buf.buffer, base);
  }
  return base + buf.byteOffset;
}

/** False once the kernel said RWF_NOWAIT is not supported here (then the thread pool does every read). */
let noWaitReads = true;

/**
 * Reads buf[off, off+len) from `pos` of `fd` if the page cache holds all of it,
 * on this thread, without waiting for the disk. Returns true when every byte was
 * read; false when nothing or only a part could be read without waiting (the
 * caller reads the range the usual way; the bytes already copied are simply
 * overwritten). Errors other than "would block" also return false: the thread
 * pool read then reports them.
 */
export function readNoWait(fd: number, buf: Buffer, off: number, len: number, pos: number): boolean {
  if (!noWaitReads || len === 0) return len === 0;
  const fn = loadPreadv2();
  if (fn === null) {
    noWaitReads = false;
    return false;
  }
  const target = buf.subarray(off, off + len);
  const addr = addressOf(target);
  IOV.writeUInt32LE(addr % 4294967296, 0);
  IOV.writeUInt32LE(Math.floor(addr / 4294967296), 4);
  IOV.writeUInt32LE(len, 8);
  IOV.writeUInt32LE(0, 12);
  const n = Number(fn(fd, IOV, 1, pos, RWF_NOWAIT));
  if (n === len) return true;
  if (n < 0 && koffi.errno() === EOPNOTSUPP) noWaitReads = false;
  return false;
}

type PwritevFn = (fd: number, iov: Buffer, iovcnt: number, offset: number) => number | bigint;
type PwriteFn = (fd: number, buf: Buffer, count: number, offset: number) => number | bigint;
let pwritevFn: PwritevFn | null | undefined;
let pwriteFn: PwriteFn | undefined;
/** Room for this many iovecs, reused (the calls are synchronous on one thread); longer lists are written in several calls. */
const IOV_MAX_NOW = 64;
const IOVS = Buffer.alloc(16 * IOV_MAX_NOW);
/** errno numbers to their names (EIO, ENOSPC...), as Node's own errors carry them. */
const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

/**
 * pwritev(2) of the buffers at `pos`, on this thread: the bytes written (maybe
 * fewer than all). Through koffi where it loads: Node's writevSync costs about
 * 0.5 us more a call in its argument checks and request setup, a tenth of a
 * 4 KiB write's whole cost in the NBD server. Failures throw an Error whose
 * `code` is the errno's name, like Node's.
 */
function writevNow(fd: number, bufs: readonly Buffer[], pos: number): number {
  if (pwritevFn === undefined) {
    try {
      const libc = koffi.load('libc.so.6');
      pwritevFn = libc.func('int64_t pwritev(int fd, void *iov, int iovcnt, int64_t offset)') as unknown as PwritevFn;
      pwriteFn = libc.func('int64_t pwrite(int fd, void *buf, size_t count, int64_t offset)') as unknown as PwriteFn;
    } catch {
      pwritevFn = null;
    }
  }
  if (pwritevFn === null) return writevSync(fd, bufs as Buffer[], pos);
  // One buffer (the commonest: a small WRITE's payload in one piece) needs no iovec.
  if (bufs.length === 1) return checked(pwriteFn!(fd, bufs[0]!, bufs[0]!.length, pos), 'pwrite');
  const count = Math.min(bufs.length, IOV_MAX_NOW);
  for (let i = 0; i < count; i++) {
    const b = bufs[i]!;
    const addr = addressOf(b);
    IOVS.writeUInt32LE(addr % 4294967296, i * 16);
    IOVS.writeUInt32LE(Math.floor(addr / 4294967296), i * 16 + 4);
    IOVS.writeUInt32LE(b.length, i * 16 + 8);
    IOVS.writeUInt32LE(0, i * 16 + 12);
  }
  return checked(pwritevFn(fd, IOVS, count, pos), 'pwritev');
}

/** A system call's result, or the error it reported (errno), thrown as Node would. */
function checked(result: number | bigint, syscall: string): number {
  const n = Number(result);
  if (n >= 0) return n;
  const errno = koffi.errno();
  const code = ERRNO_NAMES.get(errno) ?? 'EIO';
  throw Object.assign(new Error(`${code}: ${syscall} failed`), { code, errno: -errno, syscall });
}

const RUSAGE_THREAD = 1;
/** Offset of ru_nvcsw in struct rusage (x86_64 and arm64: two timevals, then 12 longs). */
const RU_NVCSW = 128;
type GetrusageFn = (who: number, buf: Buffer) => number;
let getrusage: GetrusageFn | null | undefined;
const RUSAGE = Buffer.alloc(144);

/**
 * The calling thread's voluntary context switches so far (it slept in the
 * kernel that many times), or -1 where getrusage cannot be called.
 */
export function voluntarySwitches(): number {
  if (getrusage === undefined) {
    try {
      getrusage = koffi.load('libc.so.6').func('int getrusage(int who, void *buf)') as unknown as GetrusageFn;
    } catch {
      getrusage = null;
    }
  }
  if (getrusage === null || getrusage(RUSAGE_THREAD, RUSAGE) !== 0) return -1;
  // The low 32 bits are enough to see a change.
  return RUSAGE.readUInt32LE(RU_NVCSW);
}

export interface InlineWriteOptions {
  /** Largest write done inline (bytes). */
  maxBytes: number;
  /** An inline write that took longer than this (ms) and slept turns inline writes off... */
  slowMs: number;
  /** ...for this long (ms). */
  backoffMs: number;
}

/** Inline writes that start within this long (ms) of the previous one's end belong to one burst. */
const BURST_GAP_MS = 0.2;

export const INLINE_WRITE_DEFAULTS: InlineWriteOptions = { maxBytes: 256 * 1024, slowMs: 20, backoffMs: 1000 };

/** When a file's small writes may be done inline (see the file comment). */
export class InlineWritePolicy {
  private offUntil = 0;
  /** When the last inline write ended (ms), and the thread's sleep count before it or its burst. */
  private lastEnd = -Infinity;
  private sleptBefore = -1;
  /** Inline writes that were slow (each turned inline writes off for a while). */
  slowWrites = 0;

  constructor(
    private readonly options: InlineWriteOptions = INLINE_WRITE_DEFAULTS,
    private readonly now: () => number = () => performance.now(),
    /** The thread's voluntary context switches (-1: unknown, then every slow write counts). */
    private readonly switches: () => number = voluntarySwitches,
  ) {}

  /** True when a write of `length` bytes may be done inline now. */
  allows(length: number): boolean {
    return length <= this.options.maxBytes && (this.offUntil === 0 || this.now() >= this.offUntil);
  }

  /**
   * Writes the buffers back to back at `pos` of `fd` on this thread (pwritev,
   * looping over short writes) and records how long it took. Throws what the
   * system call threw.
   */
  write(fd: number, bufs: readonly Buffer[], pos: number): void {
    const start = this.now();
    // The thread's sleep count before the write: read again only when time has
    // passed since the last inline write ended (the thread may have slept in
    // between, in the event loop's wait). Writes back to back reuse it: reading it
    // costs a system call and a koffi call (0.4 us, against 1.2 us for the 4 KiB
    // write itself). A sleep in an earlier write of a burst then counts
    // against a later slow one; that only errs toward the thread pool.
    if (start - this.lastEnd > BURST_GAP_MS) this.sleptBefore = this.switches();
    const slept = this.sleptBefore;
    let rest = bufs;
    let at = pos;
    let left = total(bufs);
    while (left > 0) {
      const n = writevNow(fd, rest, at);
      if (n <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
      left -= n;
      at += n;
      if (left > 0) rest = advance(rest, n); // a short write: the rest again
    }
    const end = this.now();
    this.lastEnd = end;
    const took = end - start;
    if (took > this.options.slowMs && (slept < 0 || this.switches() !== slept)) {
      this.slowWrites++;
      this.offUntil = this.now() + this.options.backoffMs;
    } else if (this.offUntil !== 0) {
      this.offUntil = 0;
    }
  }
}
