/** poll(2) with a zero timeout: it tells which sockets have input now, and never waits. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMainThread } from 'node:worker_threads';
import { eventLoopFd, pollAvailable, pollNow, POLLFD_BYTES, setPollFd } from '../../../engine/core/poll-now.js';
import { socketPair } from '../../helpers/socket-pair.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'poll-now-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Resolves once `fd` has input (the kernel has queued what the peer wrote). */
async function untilReadable(fds: Buffer, count: number): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const n = pollNow(fds, count);
    if (n !== 0) return n;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return 0;
}

describe('pollNow', () => {
  it.skipIf(!pollAvailable())('answers 0 for sockets without input and counts those with input, hang-ups included', async () => {
    const a = await socketPair(dir);
    const b = await socketPair(dir, 'other.sock');
    try {
      // The streams must not read the bytes away before poll sees them.
      a.server.pause();
      b.server.pause();
      const fds = Buffer.alloc(2 * POLLFD_BYTES);
      setPollFd(fds, 0, a.fd);
      setPollFd(fds, 1, b.fd);
      expect(pollNow(fds, 2)).toBe(0);

      a.client.write('x');
      expect(await untilReadable(fds, 2)).toBe(1);
      expect(fds.readInt16LE(6) & 1).toBe(1); // POLLIN on the first entry
      expect(fds.readInt16LE(POLLFD_BYTES + 6)).toBe(0);

      b.client.destroy(); // a hang-up counts too: the event loop must see it
      expect(await untilReadable(fds.subarray(POLLFD_BYTES), 1)).toBe(1);
      expect(pollNow(fds, 2)).toBe(2);
    } finally {
      a.close();
      b.close();
    }
  });

  it.skipIf(!pollAvailable() || !isMainThread)('sees, through the event loop\'s own descriptor, input on a socket the loop reads', async () => {
    const fd = eventLoopFd();
    expect(fd).not.toBeNull();
    const pair = await socketPair(dir);
    try {
      const got = new Promise<void>((resolve) => pair.server.once('data', () => resolve()));
      const fds = Buffer.alloc(POLLFD_BYTES);
      setPollFd(fds, 0, fd!);
      // Written (the stream writes at once when nothing is queued) and polled in
      // the same turn: the loop cannot have read it yet, so its epoll reads as ready.
      pair.client.write('x');
      expect(pollNow(fds, 1)).toBe(1);
      await got;
    } finally {
      pair.close();
    }
  });
});
