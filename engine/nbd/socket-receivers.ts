/**
 * Receives a run of bytes from a socket on a thread of its own: a small set of
 * worker threads, each of which, given a socket's file descriptor and a
 * buffer, reads from the socket until the buffer is full (recv with
 * MSG_DONTWAIT, and poll while nothing has arrived), the peer hangs up, or an
 * error, then reports how much it received.
 *
 * Why: the event loop reads every connection of a server in turn. A 1 MiB NBD
 * WRITE payload arrives in five or more pieces (a client's socket buffer holds
 * about 200 KiB), each an epoll wake-up, a callback and a kernel copy on the
 * main thread, while the other connections wait. On a worker, the copy runs
 * beside the main thread's work, and the worker's poll wakes as soon as the
 * next piece is sent. Measured under nbdcopy (4 connections, 1 MiB writes):
 * a sixth less server CPU, and 0.80x nbdkit became 0.91-0.94x (docs/nbd.md).
 *
 * The caller must stop reading the socket itself meanwhile, keep the buffer
 * alive and untouched, and not close the descriptor until the worker has
 * reported (abort() ends a receive within ABORT_POLL_MS). When no worker is
 * free, or none has started yet, tryReceive() says so and the caller reads as
 * it would without them: nothing depends on a worker being there.
 *
 * A receive may also write what it received into a file (tryReceive's
 * `write`): once the buffer is full, the worker reports the receive (the
 * socket can be read again at once) and then writes the bytes with pwrite on
 * the same thread, while they are in its CPU's cache, instead of a trip through
 * libuv's thread pool; a second report gives the write's outcome. An abort
 * before the write begins means no write; one after does not stop it. Where
 * the write must be preceded by copy-on-write, the worker first makes the
 * in-kernel copies it was given (`write.copies`, copy_file_range), and writes
 * nothing if one fails.
 *
 * And a receive-and-write of an NBD WRITE may go on as a stream (`stream`):
 * once the payload is written, and the connection says go (nothing else of it
 * runs, no reply is queued: the worker is then the only one writing to the
 * socket), the worker sends the WRITE's reply itself and goes on reading the
 * connection's requests: each plain WRITE (no flags, checked, short enough for
 * its buffer) is received, marked in the CBT table, copied on write where
 * the device's window says so (StreamCow), written to the device's file and
 * answered on this thread, with no report to the event loop. The first
 * request of any other kind, a WRITE that needs a copy outside the window, a
 * freeze (stop()), an idle client, a hang-up or a close ends the stream: the
 * worker gives the socket back with the bytes of the request it read and did
 * not serve (StreamEnd), which the connection then serves as usual.
 *
 * A worker waits for its job in a shared control block (Atomics.wait: no
 * message and no garbage per job) and reports with one number (two with a
 * write), the only way to wake the main thread's event loop. Workers are plain
 * JavaScript evaluated from a string (they run the same from sources and from
 * the build) and import koffi from where this module's import of it resolves;
 * if that fails, no worker is used.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import koffi from 'koffi';
import type { FileCopy, FileWriteStream } from '../core/block-device.js';
import { NBD_CMD_WRITE, NBD_REQUEST_MAGIC, NBD_REQUEST_SIZE, NBD_SIMPLE_REPLY_MAGIC } from './constants.js';
import { nbdErrorForErrno } from './errors.js';

/** How often (ms) a worker waiting for bytes looks whether its receive was aborted. */
export const ABORT_POLL_MS = 20;

/** The most in-kernel copies one write may ask for (WriteAfter.copies). */
export const MAX_WRITE_COPIES = 8;

/** Options of SocketReceivers beyond the number of threads. */
export interface ReceiverOptions {
  /** How long (ms) a stream waits for its client's next request before it gives the socket back. Default ABORT_POLL_MS. */
  streamIdleMs?: number;
  /**
   * How long (ms) a worker that has written a stream's first payload waits for
   * go() before it declines (and its caller answers the WRITE). Default 0: it
   * goes on only if go() came while it received or wrote, and a WRITE's reply
   * is never held back for a stream.
   */
  goWaitMs?: number;
}

/** What a receive ended with. */
export interface Received {
  /** Bytes received into the buffer (from its start). */
  bytes: number;
  /** The peer hung up before the buffer was full. */
  eof: boolean;
  /** errno of a failed recv or poll (0: none). */
  errno: number;
  /** The worker itself failed: bytes may have been taken from the socket and lost, so the connection must be dropped. */
  lost?: true;
}

/** A file range to write a receive's bytes to once they are all in (tryReceive). */
export interface WriteAfter {
  fd: number;
  /** What to write: usually the receive's buffer with the bytes before it (a payload's head). */
  from: Buffer;
  position: number;
  /**
   * Called once, after the receive's report: -1 when nothing was written (the
   * receive ended short, or was aborted before the write began), else the
   * write's outcome: 0, or the errno of a failed pwrite (part of the range may
   * then be written). `answered`: the worker has sent the WRITE's reply (a
   * stream that went on: the caller must not answer it). `copyFailed`: not
   * written (-1) because one of `copies` failed.
   */
  done(wrote: number, answered: boolean, copyFailed?: boolean): void;
  /**
   * In-kernel copies (copy_file_range) to make, in order, before the write
   * (copy-on-write), at most MAX_WRITE_COPIES: if one fails, nothing is
   * written.
   */
  copies?: readonly FileCopy[];
  /** Go on as a stream after the write, if go() comes in time (the job's report then ends with stream.ended()). */
  stream?: StreamAfter;
}

/** What a stream needs beyond its first WRITE (WriteAfter.stream). */
export interface StreamAfter {
  /** The first WRITE's cookie: the worker answers it when the stream goes on. */
  cookieHigh: number;
  cookieLow: number;
  /** Where the payloads after the first are received: the longest payload streamed is its length. */
  buffer: Buffer;
  /** Shorter WRITEs, and any not aligned to `alignment`, end the stream (the connection serves them). */
  minLength: number;
  alignment: number;
  /** Called once, last, when the worker has given the socket back. */
  ended(end: StreamEnd): void;
}

/** The file and table a stream writes and marks (BlockDevice.fileWriteStream). */
export type StreamFile = Omit<FileWriteStream, 'end'>;

/** How a stream ended (StreamAfter.ended). */
export interface StreamEnd {
  /** WRITEs written and answered by the worker after the first, and their bytes. */
  writes: number;
  bytes: number;
  /**
   * The next request's bytes the worker read and did not serve: its header (or
   * the part of it that came), and `payload` bytes of its payload, at the start
   * of the stream's buffer. The socket's next bytes follow them.
   */
  header: Buffer;
  payload: number;
  /** The peer hung up; errno of a failed recv, poll or send (0: none). */
  eof: boolean;
  errno: number;
  /** The worker itself failed: bytes may be lost, so the connection must be dropped. */
  lost?: true;
}

/** A receive under way. */
export interface ReceiveJob {
  /** Ends the receive soon (what arrived so far is reported as usual); ends a stream at once. */
  abort(): void;
  /**
   * A stream's go (`file`) or no (null), before its first payload is written
   * (or within goWaitMs after); false when it is too late (the worker
   * declined, or was aborted): nothing of `file` is used then.
   */
  go(file: StreamFile | null): boolean;
  /**
   * Asks a stream that went on to end before its next write. `writeDone` is
   * called once no write of it is under way any more, and none will begin:
   * at once, or when the worker's write in progress ends.
   */
  stop(writeDone: () => void): void;
}

/**
 * Int32 slots of a worker's control block; the buffer's address is a Float64
 * at ADDRESS_BYTE, and a write's source address and position at WRITE_BYTE.
 */
const STATE = 0;
const FD = 1;
const LENGTH = 2;
/** The file to write to after the receive (-1: none), and the write's length. */
const WRITE_FD = 6;
const WRITE_LENGTH = 7;
const ADDRESS_BYTE = 16;
const WRITE_BYTE = 40;
/** A stream's slots: whether the job may stream, its go (GO_*), its stop (STOP_*), and whether its worker writes now. */
const STREAM = 3;
/** How long (ms) a stream waits for a request before it ends. */
const IDLE_MS = 14;
/** How long (ms) the worker waits for the go. */
const GO_WAIT_MS_SLOT = 15;
const GO = 16;
const STOP = 17;
const WRITING_NOW = 18;
/** The stream's file, its limits, the first WRITE's cookie and the CBT table's shift and number (-1: no table). */
const STREAM_FD = 19;
const MIN_LENGTH = 20;
const ALIGNMENT = 21;
const BUFFER_LENGTH = 22;
const COOKIE_HIGH = 23;
const COOKIE_LOW = 24;
const MARK_SHIFT = 25;
const MARK_NUMBER = 26;
/** How it ended: header and payload bytes read and not served, eof, errno, WRITEs served. */
const END_HEADER = 27;
const END_PAYLOAD = 28;
const END_EOF = 29;
const END_ERRNO = 30;
const END_WRITES = 31;
/** Float64s: the stream buffer's address, the file position of the device's byte 0, the device's size, the bytes served. */
const STREAM_BYTE = 128;
/** The unserved header's bytes. */
const HEADER_BYTE = 192;
/** A write's in-kernel copies before it (WriteAfter.copies): their count, and five Float64s each (fdIn, posIn, fdOut, posOut, length). */
const COPY_COUNT = 8;
const COPY_BYTE = 224;
const CONTROL_BYTES = COPY_BYTE + 5 * 8 * MAX_WRITE_COPIES;
/** GO values: waiting, go, declined (by either side). */
const GO_WAIT = 0;
const GO_YES = 1;
const GO_NO = 2;
/** STOP values: run, stop before the next write, stop now (abort). */
const STOP_NONE = 0;
const STOP_WRITES = 1;
const STOP_NOW = 2;
/** STATE values. */
const IDLE = 0;
const JOB = 1;
const ABORT = 2;
const EXIT = 3;
/** Receiving is done and the write has begun: an abort no longer stops it. */
const WRITING = 4;
/**
 * A receive's report is bytes * REPORT_SCALE + WRITING_NEXT (when a write
 * follows) + errno * 2 + eof (errno < 4096; bytes well below 2^38).
 */
const REPORT_SCALE = 16384;
const WRITING_NEXT = 8192;
/** errno of a write whose worker failed. */
const EIO = 5;
/** The worker's first message: koffi loaded, ready for jobs. */
const READY = -1;
/** A write's report: WROTE - outcome (0 or errno; below READY). */
const WROTE = -2;
/** The first WRITE of a stream that goes on: written and answered by the worker. */
const ANSWERED = -10000;
/** A stream's write in progress when it was asked to stop has ended. */
const WRITE_DONE = -10001;
/** A stream job's last report: the socket is given back (the END_* slots say how). */
const STREAM_END = -10002;
/** A copy before the write failed: nothing was written. */
const COPY_FAILED = -10003;
/**
 * Jobs with copies (copy-on-write) make them one worker at a time, and then
 * their write one at a time: workers that copy into, or write, the same file
 * at once wait for its inode's lock in the kernel, spinning on the CPUs the
 * holder needs. In turns, the copy of one job runs beside the write of
 * another (measured: docs/nbd.md, "Copy-on-write on the receiving thread").
 */
const COPY_LOCK = 0;
const WRITE_LOCK = 1;

/** NBD's error for each errno below 4096, for the replies a stream's worker sends. */
const REPLY_ERRORS = Uint8Array.from({ length: 4096 }, (_, errno) => (errno === 0 ? 0 : nbdErrorForErrno(errno)));

const WORKER_SOURCE = `
const { parentPort, workerData, receiveMessageOnPort } = require('node:worker_threads');
import(workerData.koffi).then(({ default: koffi }) => serve(koffi));
function serve(koffi) {
const libc = koffi.load('libc.so.6');
const recv = libc.func('long recv(int fd, uintptr_t buf, size_t len, int flags)');
const send = libc.func('long send(int fd, uintptr_t buf, size_t len, int flags)');
const poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)');
const pwrite = libc.func('long pwrite(int fd, uintptr_t buf, size_t len, int64_t pos)');
const copyFileRange = libc.func('long copy_file_range(int fd_in, uintptr_t off_in, int fd_out, uintptr_t off_out, size_t len, unsigned int flags)');
const MSG_DONTWAIT = 0x40, MSG_NOSIGNAL = 0x4000, EAGAIN = 11, EINTR = 4, EIO = 5, POLLIN = 1, POLLOUT = 4;
const control = new Int32Array(workerData.control);
const address = new Float64Array(workerData.control, ${ADDRESS_BYTE}, 1);
const write = new Float64Array(workerData.control, ${WRITE_BYTE}, 2);
const streamAt = new Float64Array(workerData.control, ${STREAM_BYTE}, 4);
const unserved = new Uint8Array(workerData.control, ${HEADER_BYTE}, ${NBD_REQUEST_SIZE});
const copies = new Float64Array(workerData.control, ${COPY_BYTE}, ${5 * MAX_WRITE_COPIES});
/** copy_file_range's two offsets (the kernel reads and advances them). */
const offsets = Buffer.alloc(16);
const offsetsAt = Number(koffi.address(offsets));
const errors = workerData.errors;
const cowLocks = new Int32Array(workerData.cowLocks);
/** Takes and gives back a lock shared by all the workers (COPY_LOCK, WRITE_LOCK). */
function lock(k) { while (Atomics.compareExchange(cowLocks, k, 0, 1) !== 0) Atomics.wait(cowLocks, k, 1); }
function unlock(k) { Atomics.store(cowLocks, k, 0); Atomics.notify(cowLocks, k, 1); }
const port = workerData.port;
const pollfd = Buffer.alloc(8);
const header = Buffer.alloc(${NBD_REQUEST_SIZE});
const headerAt = Number(koffi.address(header));
const reply = Buffer.alloc(16);
const replyAt = Number(koffi.address(reply));
reply.writeUInt32BE(${NBD_SIMPLE_REPLY_MAGIC}, 0);
/** recvAll()'s outcome: bytes received, eof, errno. */
let got = 0, eof = 0, errno = 0;
parentPort.postMessage(${READY});
/** Waits for fd to be ready for events (ABORT_POLL_MS at most): 1 ready, 0 not yet, or -errno. */
function wait(fd, events) {
  pollfd.writeInt32LE(fd, 0);
  pollfd.writeInt16LE(events, 4);
  pollfd.writeInt16LE(0, 6);
  const p = poll(pollfd, 1, ${ABORT_POLL_MS});
  if (p >= 0) return p;
  const e = koffi.errno();
  return e === EINTR ? 0 : -e;
}
/**
 * Receives length bytes at address 'at'. Stops early on eof, an error, a stop
 * now, or, with 'boundary' (a request's first byte still to come), on any stop
 * and once the client has been idle for IDLE_MS.
 */
function recvAll(fd, at, length, boundary) {
  got = 0; eof = 0; errno = 0;
  const since = Date.now();
  while (got < length) {
    const n = Number(recv(fd, at + got, length - got, MSG_DONTWAIT));
    if (n > 0) { got += n; continue; }
    if (n === 0) { eof = 1; return; }
    const e = koffi.errno();
    if (e === EINTR) continue;
    if (e !== EAGAIN) { errno = e; return; }
    const stop = Atomics.load(control, ${STOP});
    if (stop === ${STOP_NOW} || (stop !== ${STOP_NONE} && boundary && got === 0)) return;
    const p = wait(fd, POLLIN);
    if (p < 0) { errno = -p; return; }
    if (p === 0 && boundary && got === 0 && Date.now() - since >= control[${IDLE_MS}]) return;
  }
}
/** Sends the reply buffer: 0, or the errno that stopped it. */
function sendReply(fd) {
  let sent = 0;
  while (sent < 16) {
    const n = Number(send(fd, replyAt + sent, 16 - sent, MSG_DONTWAIT | MSG_NOSIGNAL));
    if (n > 0) { sent += n; continue; }
    const e = n < 0 ? koffi.errno() : EIO;
    if (e === EINTR) continue;
    if (e !== EAGAIN) return e;
    if (Atomics.load(control, ${STOP}) === ${STOP_NOW}) return EIO;
    const p = wait(fd, POLLOUT);
    if (p < 0) return -p;
  }
  return 0;
}
/** pwrite of all of [from, from+length) at 'at': 0, or the errno that stopped it. */
function writeAll(fd, from, length, at) {
  while (length > 0) {
    const n = Number(pwrite(fd, from, length, at));
    if (n > 0) { from += n; length -= n; at += n; continue; }
    const e = n < 0 ? koffi.errno() : EIO;
    if (e === EINTR) continue;
    return e;
  }
  return 0;
}
/** copy_file_range of 'left' bytes from posIn of fdIn to posOut of fdOut: false when it failed. */
function copyRange(fdIn, posIn, fdOut, posOut, left) {
  while (left > 0) {
    offsets.writeBigInt64LE(BigInt(posIn), 0);
    offsets.writeBigInt64LE(BigInt(posOut), 8);
    const n = Number(copyFileRange(fdIn, offsetsAt, fdOut, offsetsAt + 8, left, 0));
    if (n > 0) { posIn += n; posOut += n; left -= n; continue; }
    if (n < 0 && koffi.errno() === EINTR) continue;
    return false;
  }
  return true;
}
/** Makes the job's in-kernel copies (COPY_COUNT of them, at COPY_BYTE): false when one failed. */
function copyAll() {
  for (let k = 0; k < control[${COPY_COUNT}]; k++) {
    if (!copyRange(copies[5 * k], copies[5 * k + 1], copies[5 * k + 2], copies[5 * k + 3], copies[5 * k + 4])) return false;
  }
  return true;
}
/**
 * A stream's copy-on-write before its write of [offset, offset+length)
 * (StreamCow): copies the window's chunks it touches that are NEW and not
 * copied yet, a run of adjacent ones at a time. 0 when the write may be
 * made; 1 when a NEW chunk it touches is not the stream's (outside the
 * window); 2 when a copy failed (marked 2 in 'copied').
 */
function copyOnWrite(cow, pending, offset, length, size) {
  const shift = cow.chunkShift, chunk = 2 ** shift, states = cow.states, targets = cow.targets, copied = cow.copied, first = cow.first;
  let n = 0;
  for (let nr = Math.floor(offset / chunk), last = Math.floor((offset + length - 1) / chunk); nr <= last; nr++) {
    if (Atomics.load(states, nr) !== 0) continue;
    const k = nr - first;
    if (k < 0 || k >= cow.count || targets[k] < 0) return 1;
    if (Atomics.load(copied, k) === 0) pending[n++] = k;
  }
  if (n === 0) return 0;
  let failed = false;
  lock(${COPY_LOCK});
  for (let i = 0; i < n && !failed;) {
    let j = i + 1;
    while (j < n && pending[j] === pending[j - 1] + 1 && targets[pending[j]] === targets[pending[j - 1]] + chunk) j++;
    const from = (first + pending[i]) * chunk;
    if (copyRange(cow.fdIn, from, cow.fdOut, targets[pending[i]], Math.min(size, (first + pending[j - 1] + 1) * chunk) - from)) {
      for (let m = i; m < j; m++) Atomics.store(copied, pending[m], 1);
    } else {
      Atomics.store(copied, pending[i], 2);
      failed = true;
    }
    i = j;
  }
  unlock(${COPY_LOCK});
  return failed ? 2 : 0;
}
/** Waits for the connection's go (GO_WAIT_MS_SLOT ms at most): true when it came; else the stream is declined. */
function waitGo() {
  const until = Date.now() + control[${GO_WAIT_MS_SLOT}];
  for (;;) {
    const go = Atomics.load(control, ${GO});
    if (go !== ${GO_WAIT}) return go === ${GO_YES};
    const left = until - Date.now();
    if (left <= 0 || Atomics.load(control, ${STOP}) !== ${STOP_NONE}) return Atomics.compareExchange(control, ${GO}, ${GO_WAIT}, ${GO_NO}) === ${GO_YES};
    Atomics.wait(control, ${GO}, ${GO_WAIT}, left);
  }
}
/** The go's message (posted just before the go): the CBT table and the copy-on-write. */
function goMessage() {
  let message;
  while ((message = receiveMessageOnPort(port)) === undefined) Atomics.wait(control, ${GO}, ${GO_YES}, 1);
  return message.message;
}
/** Raises the CBT table's blocks of [offset, offset+length) to the stream's number (MARK_SHIFT, MARK_NUMBER). */
function mark(table, offset, length) {
  const blockBytes = 2 ** control[${MARK_SHIFT}], number = control[${MARK_NUMBER}];
  const last = Math.min(Math.floor((offset + length - 1) / blockBytes), table.length - 1);
  for (let i = Math.floor(offset / blockBytes); i <= last; i++) if (table[i] < number) table[i] = number;
}
/** Serves the connection's plain WRITEs until one of the stream's ends; records how it ended in the END_* slots. */
function stream(fd, go) {
  const table = go.table, cow = go.cow;
  const file = control[${STREAM_FD}], minLength = control[${MIN_LENGTH}], alignment = control[${ALIGNMENT}], room = control[${BUFFER_LENGTH}];
  const buffer = streamAt[0], base = streamAt[1], size = streamAt[2];
  /** The window's chunks a write copies (copyOnWrite): at most one per chunk of the longest write, and one more. */
  const pending = cow === null ? null : new Int32Array(Math.floor(room / 2 ** cow.chunkShift) + 2);
  let writes = 0, bytes = 0, headerBytes = 0, payload = 0;
  for (;;) {
    recvAll(fd, headerAt, ${NBD_REQUEST_SIZE}, true);
    if (got < ${NBD_REQUEST_SIZE}) { headerBytes = got; break; }
    headerBytes = ${NBD_REQUEST_SIZE};
    const offset = header.readUInt32BE(16) * 4294967296 + header.readUInt32BE(20);
    const length = header.readUInt32BE(24);
    if (header.readUInt32BE(0) !== ${NBD_REQUEST_MAGIC} || header.readUInt16BE(4) !== 0 || header.readUInt16BE(6) !== ${NBD_CMD_WRITE} ||
        length < minLength || length > room || length % alignment !== 0 || offset % alignment !== 0 || offset + length > size) break;
    recvAll(fd, buffer, length, false);
    if (got < length) { payload = got; break; }
    // A stop before this store is seen here; one after it waits for the write (stop()).
    Atomics.store(control, ${WRITING_NOW}, 1);
    // Not this stream's to write (a stop, a chunk to copy it does not hold, a failed copy): given back unwritten.
    if (Atomics.load(control, ${STOP}) !== ${STOP_NONE} || (cow !== null && copyOnWrite(cow, pending, offset, length, size) !== 0)) {
      Atomics.store(control, ${WRITING_NOW}, 0);
      payload = length;
      break;
    }
    if (table !== null) mark(table, offset, length);
    if (cow !== null) lock(${WRITE_LOCK});
    const wrote = writeAll(file, buffer, length, base + offset);
    if (cow !== null) unlock(${WRITE_LOCK});
    Atomics.store(control, ${WRITING_NOW}, 0);
    if (Atomics.load(control, ${STOP}) !== ${STOP_NONE}) parentPort.postMessage(${WRITE_DONE});
    headerBytes = 0;
    writes++;
    bytes += length;
    control[${END_WRITES}] = writes;
    streamAt[3] = bytes;
    header.copy(reply, 8, 8, 16);
    reply.writeUInt32BE(errors[wrote % 4096], 4);
    errno = sendReply(fd);
    if (errno !== 0) break;
  }
  unserved.set(header.subarray(0, headerBytes));
  control[${END_HEADER}] = headerBytes;
  control[${END_PAYLOAD}] = payload;
  control[${END_EOF}] = eof;
  control[${END_ERRNO}] = errno;
  control[${END_WRITES}] = writes;
  streamAt[3] = bytes;
}
for (;;) {
  Atomics.wait(control, ${STATE}, ${IDLE});
  const state = Atomics.load(control, ${STATE});
  if (state === ${EXIT}) break;
  if (state === ${IDLE}) continue;
  const fd = control[${FD}], length = control[${LENGTH}], base = address[0], streaming = control[${STREAM}] === 1;
  if (streaming) {
    // A go message left from a stream that was declined.
    while (receiveMessageOnPort(port) !== undefined);
  }
  recvAll(fd, base, length, false);
  const bytes = got;
  const wfd = control[${WRITE_FD}];
  const report = bytes * ${REPORT_SCALE} + (errno % 4096) * 2 + eof;
  if (wfd >= 0 && bytes === length && Atomics.compareExchange(control, ${STATE}, ${JOB}, ${WRITING}) === ${JOB}) {
    parentPort.postMessage(report + ${WRITING_NEXT});
    // Copy-on-write first: if a copy fails, nothing is written.
    const cow = control[${COPY_COUNT}] > 0;
    if (cow) lock(${COPY_LOCK});
    const copied = copyAll();
    if (cow) unlock(${COPY_LOCK});
    if (!copied) {
      if (streaming) {
        Atomics.compareExchange(control, ${GO}, ${GO_WAIT}, ${GO_NO});
        parentPort.postMessage(${COPY_FAILED});
      }
      Atomics.store(control, ${STATE}, ${IDLE});
      parentPort.postMessage(streaming ? ${STREAM_END} : ${COPY_FAILED});
      continue;
    }
    if (cow) lock(${WRITE_LOCK});
    const wrote = writeAll(wfd, write[0], control[${WRITE_LENGTH}], write[1]);
    if (cow) unlock(${WRITE_LOCK});
    if (streaming && wrote === 0 && waitGo()) {
      // Marked here too (its caller marks it once it learns it was written): the client may read the table once answered.
      const go = goMessage();
      if (go.table !== null) mark(go.table, write[1] - streamAt[1], control[${WRITE_LENGTH}]);
      reply.writeUInt32BE(0, 4);
      // The cookie's halves are stored in Int32 slots: read back as unsigned.
      reply.writeUInt32BE(control[${COOKIE_HIGH}] >>> 0, 8);
      reply.writeUInt32BE(control[${COOKIE_LOW}] >>> 0, 12);
      const sent = sendReply(fd);
      parentPort.postMessage(${ANSWERED});
      if (sent === 0) stream(fd, go);
      else control[${END_ERRNO}] = sent;
    } else if (streaming) {
      Atomics.compareExchange(control, ${GO}, ${GO_WAIT}, ${GO_NO});
      parentPort.postMessage(${WROTE} - wrote);
    }
    // IDLE before the job's last report: once it is read, the next job may be stored at once.
    Atomics.store(control, ${STATE}, ${IDLE});
    parentPort.postMessage(streaming ? ${STREAM_END} : ${WROTE} - wrote);
    continue;
  }
  if (streaming) {
    Atomics.compareExchange(control, ${GO}, ${GO_WAIT}, ${GO_NO});
    parentPort.postMessage(report);
  }
  Atomics.store(control, ${STATE}, ${IDLE});
  parentPort.postMessage(streaming ? ${STREAM_END} : report);
}
}
`;

interface Receiver {
  worker: Worker;
  /** The job and its state (STATE, FD, LENGTH; the address at ADDRESS_BYTE). */
  control: Int32Array;
  address: Float64Array;
  /** A write's source address and file position. */
  writeAt: Float64Array;
  /** A stream's buffer address, file base, device size and bytes served (STREAM_BYTE). */
  streamAt: Float64Array;
  /** The unserved header a stream gives back (HEADER_BYTE). */
  unserved: Uint8Array;
  /** A write's copies (COPY_BYTE). */
  copies: Float64Array;
  /** Where a stream's go message (its CBT table) is posted. */
  port: MessagePort;
  /** The current receive's report, or null once reported (or idle). */
  done: ((result: Received) => void) | null;
  /** The buffer received into, kept alive (its memory stays in place) until the report. */
  target: Buffer | null;
  /** The write after the receive, kept (with its source) until its report; null when none. */
  write: WriteAfter | null;
  /** A stream job's own part, kept (with its buffer) until STREAM_END; null when none. */
  stream: StreamAfter | null;
  /** Called once the stream's write in progress at stop() has ended. */
  writeDone: (() => void) | null;
}

/** Counts since the receivers were made. */
export interface ReceiverStats {
  /** Worker threads running. */
  workers: number;
  /** Receives under way (streams included). */
  busy: number;
  /** Receives that ended (reported). */
  receives: number;
  /** Bytes they received. */
  bytes: number;
  /** Receives that wrote what they received to a file (`write`), and the bytes written. */
  writes: number;
  writtenBytes: number;
  /** Streams that went on, and the WRITEs (and bytes) they served after their first. */
  streams: number;
  streamedWrites: number;
  streamedBytes: number;
}

export class SocketReceivers {
  private readonly idle: Receiver[] = [];
  private readonly all = new Set<Receiver>();
  private starting = 0;
  private failed = false;
  private closed = false;
  private busy = 0;
  private receives = 0;
  private receivedBytes = 0;
  private writes = 0;
  private writtenBytes = 0;
  private streams = 0;
  /** The workers' copy-on-write locks (COPY_LOCK, WRITE_LOCK). */
  private readonly cowLocks = new SharedArrayBuffer(8);
  private streamedWrites = 0;
  private streamedBytes = 0;
  /** Where koffi's ES module is, for the workers' import(). */
  private readonly koffiUrl: string | null;
  /** Called when a worker becomes ready or fails (start() waits on it). */
  private changed: (() => void)[] = [];

  constructor(
    /** Workers at most (each is a thread with a JavaScript heap of its own). */
    private readonly max: number,
    private readonly options: ReceiverOptions = {},
  ) {
    let url: string | null = null;
    try {
      url = import.meta.resolve('koffi');
    } catch {
      // no koffi to give the workers: tryReceive() always declines
    }
    this.koffiUrl = url;
  }

  /**
   * Starts receiving target.length bytes from the socket `fd` into `target`
   * on a free worker; `done` is called on this thread with the outcome. Null
   * when no worker is ready: read the socket as usual. The first calls start
   * the workers (up to `max`), which are ready a few milliseconds later. With
   * `write`, once the buffer is full the worker writes `write.from` at
   * `write.position` of `write.fd` (after the receive's report, so the socket
   * may be read again meanwhile), then calls write.done(); the caller keeps the
   * descriptor open until then (`write.from` is kept alive here). With
   * `write.stream`, the socket stays with the worker until stream.ended(),
   * which comes last (the caller must not read it after `done` meanwhile).
   */
  tryReceive(fd: number, target: Buffer, done: (result: Received) => void, write?: WriteAfter): ReceiveJob | null {
    if (this.failed || this.closed || target.length === 0) return null;
    const receiver = this.idle.pop();
    if (receiver === undefined) {
      this.startOne();
      return null;
    }
    const stream = write?.stream ?? null;
    receiver.done = done;
    receiver.target = target;
    receiver.write = write ?? null;
    receiver.stream = stream;
    receiver.writeDone = null;
    receiver.worker.ref();
    this.busy++;
    const { control, address } = receiver;
    control[FD] = fd;
    control[LENGTH] = target.length;
    address[0] = Number(koffi.address(target));
    control[WRITE_FD] = write === undefined ? -1 : write.fd;
    const copies = write?.copies ?? [];
    if (copies.length > MAX_WRITE_COPIES) throw new RangeError(`at most ${MAX_WRITE_COPIES} copies before a write`);
    control[COPY_COUNT] = copies.length;
    copies.forEach((c, k) => receiver.copies.set([c.fdIn, c.posIn, c.fdOut, c.posOut, c.length], 5 * k));
    if (write !== undefined) {
      control[WRITE_LENGTH] = write.from.length;
      receiver.writeAt[0] = Number(koffi.address(write.from));
      receiver.writeAt[1] = write.position;
    }
    control[STREAM] = stream === null ? 0 : 1;
    control[IDLE_MS] = this.options.streamIdleMs ?? ABORT_POLL_MS;
    control[GO_WAIT_MS_SLOT] = this.options.goWaitMs ?? 0;
    control[GO] = GO_WAIT;
    control[STOP] = STOP_NONE;
    control[WRITING_NOW] = 0;
    control.fill(0, END_HEADER, END_WRITES + 1); // END_HEADER .. END_WRITES follow each other
    receiver.streamAt[3] = 0;
    if (stream !== null) {
      control[COOKIE_HIGH] = stream.cookieHigh;
      control[COOKIE_LOW] = stream.cookieLow;
      control[MIN_LENGTH] = Math.max(1, stream.minLength);
      control[ALIGNMENT] = Math.max(1, stream.alignment);
      control[BUFFER_LENGTH] = stream.buffer.length;
      receiver.streamAt[0] = Number(koffi.address(stream.buffer));
    }
    Atomics.store(control, STATE, JOB);
    Atomics.notify(control, STATE);
    return {
      abort: () => {
        // ABORT: no write if it has not begun; STOP_NOW: the receive (or the stream) ends.
        Atomics.compareExchange(control, STATE, JOB, ABORT);
        Atomics.store(control, STOP, STOP_NOW);
        Atomics.notify(control, GO);
      },
      go: (file) => this.go(receiver, stream, file),
      stop: (writeDone) => {
        if (stream === null || receiver.stream !== stream) {
          writeDone();
          return;
        }
        Atomics.compareExchange(control, STOP, STOP_NONE, STOP_WRITES);
        Atomics.notify(control, GO);
        // Dekker's order with the worker's (WRITING_NOW, then STOP): one of the two sees the other's store.
        if (Atomics.load(control, WRITING_NOW) === 0) writeDone();
        else receiver.writeDone = writeDone;
      },
    };
  }

  /** ReceiveJob.go(). */
  private go(receiver: Receiver, stream: StreamAfter | null, file: StreamFile | null): boolean {
    const control = receiver.control;
    if (stream === null || receiver.stream !== stream) return false;
    if (file === null) {
      Atomics.compareExchange(control, GO, GO_WAIT, GO_NO);
      Atomics.notify(control, GO);
      return false;
    }
    if (Atomics.load(control, GO) !== GO_WAIT) return false;
    const marks = file.marks;
    control[STREAM_FD] = file.fd;
    control[MARK_SHIFT] = marks === null ? 0 : marks.shift;
    control[MARK_NUMBER] = marks === null ? -1 : marks.number;
    receiver.streamAt[1] = file.base;
    receiver.streamAt[2] = file.size;
    // Posted before the go: the worker takes it as soon as it sees the go (a
    // message left by a go that came too late is dropped at its next stream).
    receiver.port.postMessage({ table: marks === null ? null : marks.table, cow: file.cow });
    const went = Atomics.compareExchange(control, GO, GO_WAIT, GO_YES) === GO_WAIT;
    Atomics.notify(control, GO);
    if (went) this.streams++;
    return went;
  }

  /**
   * Starts every worker now instead of at the first receives, and resolves
   * once each is ready (or has failed: then none is used). Receives go to
   * workers from then on; without it the first few are read as usual.
   */
  async start(): Promise<void> {
    while (!this.failed && !this.closed && this.koffiUrl !== null && this.all.size + this.starting < this.max) this.startOne();
    while (this.starting > 0 && !this.failed) await new Promise<void>((resolve) => this.changed.push(resolve));
  }

  stats(): ReceiverStats {
    // Streams under way count what they have served so far.
    let streamedWrites = this.streamedWrites;
    let streamedBytes = this.streamedBytes;
    for (const r of this.all) {
      if (r.stream === null) continue;
      streamedWrites += Atomics.load(r.control, END_WRITES);
      streamedBytes += r.streamAt[3]!;
    }
    return {
      workers: this.all.size,
      busy: this.busy,
      receives: this.receives,
      bytes: this.receivedBytes,
      writes: this.writes,
      writtenBytes: this.writtenBytes,
      streams: this.streams,
      streamedWrites,
      streamedBytes,
    };
  }

  /** Receives under way now. */
  get busyCount(): number {
    return this.busy;
  }

  /**
   * Ends the workers. Receives under way are aborted first and reported as
   * usual (their callers then close their sockets); resolves once every
   * worker has exited.
   */
  async close(): Promise<void> {
    this.closed = true;
    const workers = [...this.all];
    for (const r of workers) {
      Atomics.compareExchange(r.control, STATE, JOB, ABORT);
      Atomics.store(r.control, STOP, STOP_NOW);
      Atomics.notify(r.control, GO);
      while (r.done !== null || r.write !== null || r.stream !== null) await new Promise<void>((resolve) => setTimeout(resolve, ABORT_POLL_MS));
      Atomics.store(r.control, STATE, EXIT);
      Atomics.notify(r.control, STATE);
    }
    this.idle.length = 0;
    this.all.clear();
    await Promise.all(workers.map((r) => r.worker.terminate()));
  }

  private startOne(): void {
    if (this.koffiUrl === null || this.all.size + this.starting >= this.max) return;
    const shared = new SharedArrayBuffer(CONTROL_BYTES);
    const control = new Int32Array(shared);
    const address = new Float64Array(shared, ADDRESS_BYTE, 1);
    const writeAt = new Float64Array(shared, WRITE_BYTE, 2);
    const streamAt = new Float64Array(shared, STREAM_BYTE, 4);
    const unserved = new Uint8Array(shared, HEADER_BYTE, NBD_REQUEST_SIZE);
    const copies = new Float64Array(shared, COPY_BYTE, 5 * MAX_WRITE_COPIES);
    const { port1, port2 } = new MessageChannel();
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { koffi: this.koffiUrl, control: shared, errors: REPLY_ERRORS, port: port2, cowLocks: this.cowLocks },
        transferList: [port2],
      });
    } catch {
      this.failed = true;
      return;
    }
    port1.unref();
    this.starting++;
    worker.unref();
    const receiver: Receiver = { worker, control, address, writeAt, streamAt, unserved, copies, port: port1, done: null, target: null, write: null, stream: null, writeDone: null };
    worker.on('message', (report: number) => {
      if (report === READY) {
        this.starting--;
        if (this.closed) {
          void worker.terminate();
          return;
        }
        this.all.add(receiver);
        this.idle.push(receiver);
        this.wake();
        return;
      }
      if (report === STREAM_END) {
        this.streamEnded(receiver, null);
        return;
      }
      if (report === WRITE_DONE) {
        const writeDone = receiver.writeDone;
        receiver.writeDone = null;
        writeDone?.();
        return;
      }
      if (report === ANSWERED) {
        this.wrote(receiver, 0, true);
        return;
      }
      if (report === COPY_FAILED) {
        this.wrote(receiver, -1, false, true);
        return;
      }
      if (report <= WROTE) {
        this.wrote(receiver, WROTE - report, false);
        return;
      }
      const writing = report % REPORT_SCALE >= WRITING_NEXT;
      this.received(receiver, {
        bytes: Math.floor(report / REPORT_SCALE),
        eof: report % 2 === 1,
        errno: Math.floor(report / 2) % 4096,
      });
      if (!writing) this.wrote(receiver, -1, false);
    });
    worker.on('error', () => {
      // A worker that failed (koffi would not load) means none is used again.
      // A receive it had is reported as lost: its bytes may be gone.
      this.failed = true;
      if (!this.all.delete(receiver)) this.starting--;
      const at = this.idle.indexOf(receiver);
      if (at >= 0) this.idle.splice(at, 1);
      const busy = receiver.done !== null || receiver.write !== null;
      if (receiver.done !== null) this.received(receiver, { bytes: 0, eof: false, errno: 0, lost: true });
      // A write it was asked for may have been made, in part: reported as failed (EIO), not as not made.
      if (busy) this.wrote(receiver, receiver.write === null ? -1 : EIO, false);
      if (receiver.stream !== null) this.streamEnded(receiver, { writes: 0, bytes: 0, header: Buffer.alloc(0), payload: 0, eof: false, errno: 0, lost: true });
      this.wake();
    });
  }

  private wake(): void {
    for (const resolve of this.changed.splice(0)) resolve();
  }

  /** A receive's report: its caller learns the outcome (a write may follow). */
  private received(receiver: Receiver, result: Received): void {
    const done = receiver.done;
    receiver.done = null;
    receiver.target = null;
    this.receives++;
    this.receivedBytes += result.bytes;
    done?.(result);
  }

  /**
   * A write's outcome (-1: none made, or none asked for); unless a stream is
   * to follow, the end of the job: the worker is free again.
   */
  private wrote(receiver: Receiver, wrote: number, answered: boolean, copyFailed = false): void {
    const write = receiver.write;
    receiver.write = null;
    if (wrote === 0 && write !== null) {
      this.writes++;
      this.writtenBytes += write.from.length;
    }
    if (receiver.stream === null) this.free(receiver);
    write?.done(wrote, answered, copyFailed);
  }

  /** A stream job's last report (`end` given when the worker failed, else read from the control block): the socket is given back. */
  private streamEnded(receiver: Receiver, lost: StreamEnd | null): void {
    const stream = receiver.stream;
    if (stream === null) return;
    receiver.stream = null;
    const writeDone = receiver.writeDone;
    receiver.writeDone = null;
    const c = receiver.control;
    const end: StreamEnd = lost ?? {
      writes: c[END_WRITES]!,
      bytes: receiver.streamAt[3]!,
      header: Buffer.from(receiver.unserved.subarray(0, c[END_HEADER]!)),
      payload: c[END_PAYLOAD]!,
      eof: c[END_EOF] === 1,
      errno: c[END_ERRNO]!,
    };
    this.streamedWrites += end.writes;
    this.streamedBytes += end.bytes;
    this.free(receiver);
    writeDone?.();
    stream.ended(end);
  }

  /** The job is over: the worker takes the next. */
  private free(receiver: Receiver): void {
    receiver.worker.unref();
    this.busy--;
    if (!this.closed && this.all.has(receiver)) this.idle.push(receiver);
  }
}
