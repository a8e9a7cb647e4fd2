/**
 * poll(2) with a zero timeout through koffi: which of a set of descriptors have
 * something to read now, asked without sleeping. The NBD server's idle spin
 * (engine/nbd/idle-spin.ts) calls it in a short loop instead of letting the
 * event loop sleep at once.
 */
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
