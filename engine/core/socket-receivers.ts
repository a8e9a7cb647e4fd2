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
 * before the write begins means no write; one after does not stop it.
 *
 * A worker waits for its job in a shared control block (Atomics.wait: no
 * message and no garbage per job) and reports with one number (two with a
 * write), the only way to wake the main thread's event loop. Workers are plain
 * JavaScript evaluated from a string (they run the same from sources and from
 * the build) and import koffi from where this module's import of it resolves;
 * if that fails, no worker is used.
 */
import { Worker } from 'node:worker_threads';
import koffi from 'koffi';

/** How often (ms) a worker waiting for bytes looks whether its receive was aborted. */
export const ABORT_POLL_MS = 20;

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
   * then be written).
   */
  done(wrote: number): void;
}

/** A receive under way. */
export interface ReceiveJob {
  /** Ends the receive soon (what arrived so far is reported as usual). */
  abort(): void;
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
const CONTROL_BYTES = 56;
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

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.koffi).then(({ default: koffi }) => serve(koffi));
function serve(koffi) {
const libc = koffi.load('libc.so.6');
const recv = libc.func('long recv(int fd, uintptr_t buf, size_t len, int flags)');
const poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)');
const pwrite = libc.func('long pwrite(int fd, uintptr_t buf, size_t len, int64_t pos)');
const MSG_DONTWAIT = 0x40, EAGAIN = 11, EINTR = 4, EIO = 5, POLLIN = 1;
const control = new Int32Array(workerData.control);
const address = new Float64Array(workerData.control, ${ADDRESS_BYTE}, 1);
const write = new Float64Array(workerData.control, ${WRITE_BYTE}, 2);
const pollfd = Buffer.alloc(8);
parentPort.postMessage(${READY});
for (;;) {
  Atomics.wait(control, ${STATE}, ${IDLE});
  const state = Atomics.load(control, ${STATE});
  if (state === ${EXIT}) break;
  if (state === ${IDLE}) continue;
  const fd = control[${FD}], length = control[${LENGTH}], base = address[0];
  let bytes = 0, eof = 0, errno = 0;
  pollfd.writeInt32LE(fd, 0);
  pollfd.writeInt16LE(POLLIN, 4);
  while (bytes < length) {
    const n = Number(recv(fd, base + bytes, length - bytes, MSG_DONTWAIT));
    if (n > 0) { bytes += n; continue; }
    if (n === 0) { eof = 1; break; }
    const e = koffi.errno();
    if (e === EINTR) continue;
    if (e !== EAGAIN) { errno = e; break; }
    if (Atomics.load(control, ${STATE}) === ${ABORT}) break;
    pollfd.writeInt16LE(0, 6);
    if (poll(pollfd, 1, ${ABORT_POLL_MS}) < 0) {
      const p = koffi.errno();
      if (p !== EINTR) { errno = p; break; }
    }
  }
  const wfd = control[${WRITE_FD}];
  const report = bytes * ${REPORT_SCALE} + (errno % 4096) * 2 + eof;
  if (wfd >= 0 && bytes === length && Atomics.compareExchange(control, ${STATE}, ${JOB}, ${WRITING}) === ${JOB}) {
    parentPort.postMessage(report + ${WRITING_NEXT});
    let from = write[0], left = control[${WRITE_LENGTH}], at = write[1], wrote = 0;
    while (left > 0) {
      const n = Number(pwrite(wfd, from, left, at));
      if (n > 0) { from += n; left -= n; at += n; continue; }
      const e = n < 0 ? koffi.errno() : EIO;
      if (e === EINTR) continue;
      wrote = e;
      break;
    }
    Atomics.store(control, ${STATE}, ${IDLE});
    parentPort.postMessage(${WROTE} - wrote);
    continue;
  }
  Atomics.store(control, ${STATE}, ${IDLE});
  parentPort.postMessage(report);
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
  /** The current receive's report, or null once reported (or idle). */
  done: ((result: Received) => void) | null;
  /** The buffer received into, kept alive (its memory stays in place) until the report. */
  target: Buffer | null;
  /** The write after the receive, kept (with its source) until its report; null when none. */
  write: WriteAfter | null;
}

/** Counts since the receivers were made. */
export interface ReceiverStats {
  /** Worker threads running. */
  workers: number;
  /** Receives under way. */
  busy: number;
  /** Receives that ended (reported). */
  receives: number;
  /** Bytes they received. */
  bytes: number;
  /** Receives that wrote what they received to a file (`write`), and the bytes written. */
  writes: number;
  writtenBytes: number;
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
  /** Where koffi's ES module is, for the workers' import(). */
  private readonly koffiUrl: string | null;
  /** Called when a worker becomes ready or fails (start() waits on it). */
  private changed: (() => void)[] = [];

  constructor(
    /** Workers at most (each is a thread with a JavaScript heap of its own). */
    private readonly max: number,
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
   * descriptor open until then (`write.from` is kept alive here).
   */
  tryReceive(fd: number, target: Buffer, done: (result: Received) => void, write?: WriteAfter): ReceiveJob | null {
    if (this.failed || this.closed || target.length === 0) return null;
    const receiver = this.idle.pop();
    if (receiver === undefined) {
      this.startOne();
      return null;
    }
    receiver.done = done;
    receiver.target = target;
    receiver.write = write ?? null;
    receiver.worker.ref();
    this.busy++;
    const { control, address } = receiver;
    control[FD] = fd;
    control[LENGTH] = target.length;
    address[0] = Number(koffi.address(target));
    control[WRITE_FD] = write === undefined ? -1 : write.fd;
    if (write !== undefined) {
      control[WRITE_LENGTH] = write.from.length;
      receiver.writeAt[0] = Number(koffi.address(write.from));
      receiver.writeAt[1] = write.position;
    }
    Atomics.store(control, STATE, JOB);
    Atomics.notify(control, STATE);
    return { abort: () => void Atomics.compareExchange(control, STATE, JOB, ABORT) };
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
    return { workers: this.all.size, busy: this.busy, receives: this.receives, bytes: this.receivedBytes, writes: this.writes, writtenBytes: this.writtenBytes };
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
      while (r.done !== null || r.write !== null) await new Promise<void>((resolve) => setTimeout(resolve, ABORT_POLL_MS));
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
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { koffi: this.koffiUrl, control: shared } });
    } catch {
      this.failed = true;
      return;
    }
    this.starting++;
    worker.unref();
    const receiver: Receiver = { worker, control, address, writeAt, done: null, target: null, write: null };
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
      if (report <= WROTE) {
        this.wrote(receiver, WROTE - report);
        return;
      }
      const writing = report % REPORT_SCALE >= WRITING_NEXT;
      this.received(receiver, {
        bytes: Math.floor(report / REPORT_SCALE),
        eof: report % 2 === 1,
        errno: Math.floor(report / 2) % 4096,
      });
      if (!writing) this.wrote(receiver, -1);
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
      if (busy) this.wrote(receiver, receiver.write === null ? -1 : EIO);
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

  /** The end of a job: its write's outcome (-1: none made, or none asked for); the worker is free again. */
  private wrote(receiver: Receiver, wrote: number): void {
    const write = receiver.write;
    receiver.write = null;
    receiver.worker.unref();
    this.busy--;
    if (wrote === 0 && write !== null) {
      this.writes++;
      this.writtenBytes += write.from.length;
    }
    if (!this.closed && this.all.has(receiver)) this.idle.push(receiver);
    write?.done(wrote);
  }
}
