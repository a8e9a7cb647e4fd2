/**
 * Sending a file's bytes to a socket without copying them through user memory:
 * sendfile(2) through koffi, on the calling (main) thread, never waiting.
 *
 * - allCached: cachestat(2) (Linux 6.5+) tells whether every page of a range is
 *   in the page cache. sendfile has no "don't wait" flag, so a caller sends only
 *   ranges this says are cached: the call then copies nothing from the disk and
 *   never stalls the event loop (a page evicted in between costs one read).
 * - sendNow / sendFileNow: send() and sendfile() with MSG_DONTWAIT semantics on
 *   the socket's (non-blocking) descriptor. They return how many bytes went;
 *   0 when the socket's buffer is full. The caller sends the rest the usual way.
 * - raiseSendBuffer: a socket buffer large enough for a whole reply, so one call
 *   usually sends it all (SO_SNDBUFFORCE as root, else SO_SNDBUF up to wmem_max).
 *
 * The pages go to the socket by reference: a write landing on the file before
 * the client has read them changes what it receives. Only a device's live bytes
 * may be sent this way, never a snapshot image's (copy-on-write keeps the old
 * data in the difference storage, not in the pages already queued).
 *
 * Everything here answers null/false/0 where it cannot run (not Linux, koffi or
 * the system call missing): callers then take their copying path.
 */
import koffi from 'koffi';

const SYS_CACHESTAT = 451;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_SNDBUFFORCE = 32;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const EAGAIN = 11;
const EINTR = 4;
const PAGE = 4096;

interface Calls {
  cachestat: (nr: number, fd: number, range: Buffer, out: Buffer, flags: number) => number | bigint;
  sendfile: (out: number, input: number, offset: Buffer, count: number) => number | bigint;
  send: (fd: number, buf: Buffer, len: number, flags: number) => number | bigint;
  setsockopt: (fd: number, level: number, name: number, value: Buffer, len: number) => number;
}

let calls: Calls | null | undefined;

function load(): Calls | null {
  if (calls !== undefined) return calls;
  if (process.platform !== 'linux' || process.arch !== 'x64') return (calls = null);
  try {
    const libc = koffi.load('libc.so.6');
    calls = {
      // syscall(2) is variadic; on x86-64 a fixed prototype of integer and pointer
      // arguments is passed in the same registers.
      cachestat: libc.func('long syscall(long nr, long fd, void *range, void *out, long flags)') as unknown as Calls['cachestat'],
      sendfile: libc.func('int64_t sendfile(int out_fd, int in_fd, void *offset, size_t count)') as unknown as Calls['sendfile'],
      send: libc.func('int64_t send(int fd, void *buf, size_t len, int flags)') as unknown as Calls['send'],
      setsockopt: libc.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)') as unknown as Calls['setsockopt'],
    };
  } catch {
    calls = null;
  }
  return calls;
}

/** False once cachestat answered that it does not exist here (ENOSYS): nothing is sent by reference then. */
let cachestatWorks = true;
/** Writes a safe integer as a little-endian 64-bit number (no BigInt per call). */
function writeU64LE(target: Buffer, value: number, at: number): void {
  target.writeUInt32LE(value >>> 0, at);
  target.writeUInt32LE(Math.floor(value / 4294967296), at + 4);
}

const RANGE = Buffer.alloc(16);
const STAT = Buffer.alloc(40);
const OFFSET = Buffer.alloc(8);

/** True when sendfile is usable here at all (the calls load and cachestat exists). */
export function sendFileAvailable(): boolean {
  return cachestatWorks && load() !== null;
}

/** True when every page of [pos, pos+len) of `fd` is in the page cache now. */
export function allCached(fd: number, pos: number, len: number): boolean {
  const c = load();
  if (c === null || !cachestatWorks || len <= 0) return false;
  writeU64LE(RANGE, pos, 0);
  writeU64LE(RANGE, len, 8);
  if (Number(c.cachestat(SYS_CACHESTAT, fd, RANGE, STAT, 0)) !== 0) {
    if (koffi.errno() === 38) cachestatWorks = false;
    return false;
  }
  const pages = Math.ceil((pos + len) / PAGE) - Math.floor(pos / PAGE);
  return Number(STAT.readBigUInt64LE(0)) >= pages;
}

/**
 * Sends buf[0, len) on the socket descriptor without waiting. Returns the bytes
 * sent (0 when the socket's buffer is full); throws the errno for other failures.
 */
export function sendNow(socketFd: number, buf: Buffer, len: number): number {
  const c = load();
  if (c === null) return 0;
  for (;;) {
    const n = Number(c.send(socketFd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL));
    if (n >= 0) return n;
    const errno = koffi.errno();
    if (errno === EINTR) continue;
    if (errno === EAGAIN) return 0;
    throw Object.assign(new Error(`send failed (errno ${errno})`), { errno });
  }
}

/**
 * sendfile(socketFd, fileFd, pos, len) without waiting (the socket is
 * non-blocking; the caller checked the range is cached). Returns the bytes sent,
 * 0 when the socket's buffer is full; throws the errno for other failures.
 */
export function sendFileNow(socketFd: number, fileFd: number, pos: number, len: number): number {
  const c = load();
  if (c === null) return 0;
  let sent = 0;
  while (sent < len) {
    writeU64LE(OFFSET, pos + sent, 0);
    const n = Number(c.sendfile(socketFd, fileFd, OFFSET, len - sent));
    if (n > 0) {
      sent += n;
      continue;
    }
    if (n === 0) break; // end of file: the caller reads the rest and finds out
    const errno = koffi.errno();
    if (errno === EINTR) continue;
    if (errno === EAGAIN) break;
    if (sent > 0) break; // report what went; the next write on the socket fails the same way
    throw Object.assign(new Error(`sendfile failed (errno ${errno})`), { errno });
  }
  return sent;
}

/**
 * Asks for a send buffer of at least `bytes` on the socket (the kernel doubles
 * the value it is given). True when either option was taken.
 */
export function raiseSendBuffer(socketFd: number, bytes: number): boolean {
  const c = load();
  if (c === null) return false;
  const value = Buffer.alloc(4);
  value.writeInt32LE(Math.ceil(bytes / 2), 0);
  if (c.setsockopt(socketFd, SOL_SOCKET, SO_SNDBUFFORCE, value, 4) === 0) return true;
  return c.setsockopt(socketFd, SOL_SOCKET, SO_SNDBUF, value, 4) === 0;
}
