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
 * A worker waits for its job in a shared control block (Atomics.wait: no
 * message and no garbage per job) and reports with one number, the only way to
 * wake the main thread's event loop. Workers are plain JavaScript evaluated
 * from a string (they run the same from sources and from the build) and
 * import koffi from where this module's import of it resolves; if that fails,
 * no worker is used.
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

/** A receive under way. */
export interface ReceiveJob {
  /** Ends the receive soon (what arrived so far is reported as usual). */
  abort(): void;
}

/** Int32 slots of a worker's control block; the buffer's address is a Float64 at ADDRESS_BYTE. */
const STATE = 0;
const FD = 1;
const LENGTH = 2;
const ADDRESS_BYTE = 16;
const CONTROL_BYTES = 24;
/** STATE values. */
const IDLE = 0;
const JOB = 1;
const ABORT = 2;
const EXIT = 3;
/** A report is bytes * REPORT_SCALE + errno * 2 + eof (errno < 4096; bytes well below 2^40). */
const REPORT_SCALE = 8192;
/** The worker's first message: koffi loaded, ready for jobs. */
const READY = -1;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.koffi).then(({ default: koffi }) => serve(koffi));
function serve(koffi) {
const libc = koffi.load('libc.so.6');
const recv = libc.func('long recv(int fd, uintptr_t buf, size_t len, int flags)');
const poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)');
const MSG_DONTWAIT = 0x40, EAGAIN = 11, EINTR = 4, POLLIN = 1;
const control = new Int32Array(workerData.control);
const address = new Float64Array(workerData.control, ${ADDRESS_BYTE}, 1);
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
  Atomics.store(control, ${STATE}, ${IDLE});
  parentPort.postMessage(bytes * ${REPORT_SCALE} + (errno % 4096) * 2 + eof);
}
}
`;

interface Receiver {
  worker: Worker;
  /** The job and its state (STATE, FD, LENGTH; the address at ADDRESS_BYTE). */
  control: Int32Array;
  address: Float64Array;
  /** The current receive's report, or null while idle. */
  done: ((result: Received) => void) | null;
  /** The buffer received into, kept alive (its memory stays in place) until the report. */
  target: Buffer | null;
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
   * the workers (up to `max`), which are ready a few milliseconds later.
   */
  tryReceive(fd: number, target: Buffer, done: (result: Received) => void): ReceiveJob | null {
    if (this.failed || this.closed || target.length === 0) return null;
    const receiver = this.idle.pop();
    if (receiver === undefined) {
      this.startOne();
      return null;
    }
    receiver.done = done;
    receiver.target = target;
    receiver.worker.ref();
    this.busy++;
    const { control, address } = receiver;
    control[FD] = fd;
    control[LENGTH] = target.length;
    address[0] = Number(koffi.address(target));
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
    return { workers: this.all.size, busy: this.busy, receives: this.receives, bytes: this.receivedBytes };
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
      while (r.done !== null) await new Promise<void>((resolve) => setTimeout(resolve, ABORT_POLL_MS));
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
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { koffi: this.koffiUrl, control: shared } });
    } catch {
      this.failed = true;
      return;
    }
    this.starting++;
    worker.unref();
    const receiver: Receiver = { worker, control, address, done: null, target: null };
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
      this.finish(receiver, {
        bytes: Math.floor(report / REPORT_SCALE),
        eof: report % 2 === 1,
        errno: Math.floor(report / 2) % 4096,
      });
      if (!this.closed) this.idle.push(receiver);
    });
    worker.on('error', () => {
      // A worker that failed (koffi would not load) means none is used again.
      // A receive it had is reported as lost: its bytes may be gone.
      this.failed = true;
      if (!this.all.delete(receiver)) this.starting--;
      const at = this.idle.indexOf(receiver);
      if (at >= 0) this.idle.splice(at, 1);
      if (receiver.done !== null) this.finish(receiver, { bytes: 0, eof: false, errno: 0, lost: true });
      this.wake();
    });
  }

  private wake(): void {
    for (const resolve of this.changed.splice(0)) resolve();
  }

  private finish(receiver: Receiver, result: Received): void {
    const done = receiver.done;
    receiver.done = null;
    receiver.target = null;
    receiver.worker.unref();
    this.busy--;
    this.receives++;
    this.receivedBytes += result.bytes;
    done?.(result);
  }
}
