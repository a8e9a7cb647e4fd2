/**
 * poll(2) with a zero timeout through koffi: which of a set of descriptors have
 * something to read now, asked without sleeping. The NBD server's idle spin
 * (engine/nbd/idle-spin.ts) calls it in a short loop instead of letting the
 * event loop sleep at once.
 *
 * eventLoopFd(): the descriptor of the main thread's event loop itself
 * (libuv's uv_backend_fd: its epoll instance, which reads as ready whenever
 * epoll_wait would return an event: a socket, a thread-pool completion, a
 * message from a worker, a signal). Polling it sees everything the event loop
 * would wake for except timers.
 */
import { isMainThread } from 'node:worker_threads';
import koffi from 'koffi';

/** Bytes of one struct pollfd: int fd, short events, short revents. */
export const POLLFD_BYTES = 8;
const POLLIN = 0x001;

type PollFn = (fds: Buffer, count: number, timeout: number) => number;
let pollFn: PollFn | null | undefined;

function load(): PollFn | null {
  if (pollFn === undefined) {
    try {
      pollFn = koffi.load('libc.so.6').func('int poll(void *fds, unsigned long nfds, int timeout)') as unknown as PollFn;
    } catch {
      pollFn = null;
    }
  }
  return pollFn;
}

let loopFd: number | null | undefined;

/** The main thread's event loop's own descriptor (see above), or null where it cannot be had (not Linux, a worker thread, the symbols missing). */
export function eventLoopFd(): number | null {
  if (loopFd === undefined) {
    loopFd = null;
    if (process.platform === 'linux' && isMainThread) {
      try {
        // The process's own symbols: Node exports libuv's for addons.
        const self = koffi.load(null);
        const defaultLoop = self.func('void *uv_default_loop()') as unknown as () => unknown;
        const backendFd = self.func('int uv_backend_fd(void *loop)') as unknown as (loop: unknown) => number;
        const fd = backendFd(defaultLoop());
        if (fd >= 0) loopFd = fd;
      } catch {
        loopFd = null;
      }
    }
  }
  return loopFd;
}

/** True where pollNow() can run (Linux with koffi). */
export function pollAvailable(): boolean {
  return process.platform === 'linux' && load() !== null;
}

/** Sets entry `index` of a pollfd array to wait for input on `fd`. */
export function setPollFd(fds: Buffer, index: number, fd: number): void {
  fds.writeInt32LE(fd, index * POLLFD_BYTES);
  fds.writeInt16LE(POLLIN, index * POLLFD_BYTES + 4);
  fds.writeInt16LE(0, index * POLLFD_BYTES + 6);
}

/**
 * How many of the first `count` entries of `fds` have input, a hang-up or an
 * error now (0: none), without waiting; -1 when poll failed or cannot be
 * called. A closed descriptor counts as ready (POLLNVAL).
 */
export function pollNow(fds: Buffer, count: number): number {
  const fn = load();
  if (fn === null) return -1;
  return fn(fds, count, 0);
}
