/**
 * The idle spin: when it polls, for whom, for how long, and when it stops
 * spinning for a connection. The decision logic runs against a scripted poll
 * and clock; the server tests at the end run real clients.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, open, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import { pollAvailable, POLLFD_BYTES } from '../../../engine/core/poll-now.js';
import { engineExports } from '../../../engine/nbd/engine-exports.js';
import { IdleSpin, MAX_MISSES } from '../../../engine/nbd/idle-spin.js';
import { NbdServer } from '../../../engine/nbd/server.js';
import { hasCommand } from '../../helpers/env.js';

const run = promisify(execFile);
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A spinner on a scripted clock (each look at it moves it on by 10 µs) and poll (answers from `answers`, then 0). */
function scripted(micros: number, answers: number[] = [], mayBlock = (): boolean => true) {
  let t = 0;
  const polls: number[][] = [];
  const spinner = new IdleSpin({
    micros,
    mayBlock,
    now: () => (t += 0.01),
    poll: (fds, count) => {
      const asked: number[] = [];
      for (let i = 0; i < count; i++) asked.push(fds.readInt32LE(i * POLLFD_BYTES));
      polls.push(asked);
      return answers.shift() ?? 0;
    },
  });
  return { spinner, polls, advance: (ms: number) => (t += ms) };
}

describe('IdleSpin', () => {
  it('polls every waiting connection once a turn, until one has input', async () => {
    const { spinner, polls } = scripted(100, [0, 0, 1]);
    const a = spinner.waiter(7);
    const b = spinner.waiter(9);
    spinner.willWait(a);
    spinner.willWait(b);
    expect(polls).toHaveLength(0); // nothing before the turn ends
    await turn();
    expect(polls).toEqual([[7, 9], [7, 9], [7, 9]]);
    expect(spinner.stats()).toEqual({ spins: 1, hits: 1 });
    expect(a.misses + b.misses).toBe(0);
  });

  it('spins no longer than its length, then counts a miss for each connection polled', async () => {
    const { spinner, polls } = scripted(100);
    const a = spinner.waiter(7);
    spinner.willWait(a);
    await turn();
    // 100 µs on a clock that moves 10 µs a look (one for the deadline, one per poll).
    expect(polls.length).toBeGreaterThanOrEqual(9);
    expect(polls.length).toBeLessThanOrEqual(11);
    expect(spinner.stats()).toEqual({ spins: 1, hits: 0 });
    expect(a.misses).toBe(1);
  });

  it(`stops spinning for a connection after ${MAX_MISSES} misses in a row, until its client is quick again`, async () => {
    const { spinner, polls, advance } = scripted(100);
    const a = spinner.waiter(7);
    for (let i = 0; i < MAX_MISSES; i++) {
      spinner.willWait(a);
      await turn();
      advance(5); // the client came back after 5 ms
      spinner.woke(a);
    }
    expect(a.misses).toBe(MAX_MISSES);
    const polled = polls.length;
    spinner.willWait(a);
    await turn();
    expect(polls.length).toBe(polled); // not spun for
    advance(5);
    spinner.woke(a); // slow again: still not
    spinner.willWait(a);
    await turn();
    expect(polls.length).toBe(polled);
    spinner.woke(a); // back within 100 µs (two looks at the clock): spun for again
    expect(a.misses).toBe(0);
    spinner.willWait(a);
    await turn();
    expect(polls.length).toBeGreaterThan(polled);
  });

  it('does not poll a connection that stopped waiting before the turn ended, nor while something else runs', async () => {
    const { spinner, polls } = scripted(100, [1]);
    const a = spinner.waiter(7);
    const b = spinner.waiter(9);
    spinner.willWait(a);
    spinner.willWait(b);
    spinner.woke(a);
    await turn();
    expect(polls[0]).toEqual([9]);

    let busy = true;
    const other = scripted(100, [], () => !busy);
    const c = other.spinner.waiter(11);
    other.spinner.willWait(c);
    await turn();
    expect(other.polls).toHaveLength(0);
    expect(other.spinner.stats().spins).toBe(0);
    expect(c.misses).toBe(0); // skipped is not missed
    busy = false;
    other.spinner.woke(c);
    other.spinner.willWait(c);
    await turn();
    expect(other.polls.length).toBeGreaterThan(0);
  });

  it('polls every connection still waiting, not only those that asked in this turn, and the listening sockets', async () => {
    const { spinner, polls } = scripted(100, [0, 1, 1]);
    spinner.watch(3);
    const a = spinner.waiter(7);
    const b = spinner.waiter(9);
    spinner.willWait(a);
    await turn();
    expect(polls).toEqual([[7, 3], [7, 3]]);
    spinner.willWait(b); // a still waits: its client's request must end b's spin too
    await turn();
    expect(polls[2]).toEqual([7, 9, 3]);
  });

  it('stops for good when a listener has no descriptor to poll, or the server closes', async () => {
    const first = scripted(100);
    first.spinner.watch(null);
    expect(first.spinner.enabled).toBe(false);
    first.spinner.willWait(first.spinner.waiter(7));
    await turn();
    expect(first.polls).toHaveLength(0);

    const second = scripted(100);
    const a = second.spinner.waiter(7);
    second.spinner.willWait(a);
    second.spinner.stop();
    await turn();
    expect(second.polls).toHaveLength(0);
  });

  it('does nothing with a length of 0', async () => {
    const { spinner, polls } = scripted(0);
    expect(spinner.enabled).toBe(false);
    spinner.willWait(spinner.waiter(7));
    await turn();
    expect(polls).toHaveLength(0);
  });
});

const canServe = pollAvailable() && hasCommand('qemu-img');

describe('the server spins for real clients', () => {
  let dir: string;
  let engine: EmbeddedEngine;
  const servers: NbdServer[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'idle-spin-test-'));
    engine = createEmbeddedEngine();
    const path = join(dir, 'disk1.img');
    await writeFile(path, '');
    await truncate(path, 32 * 1024 * 1024);
    await engine.addDevice({ path, name: 'disk1' });
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function serve(spinMicros?: number): Promise<NbdServer> {
    const server = new NbdServer({ exports: engineExports(engine), unixSocket: join(dir, `s${servers.length}.sock`), ...(spinMicros === undefined ? {} : { spinMicros }) });
    servers.push(server);
    await server.start();
    return server;
  }

  /** 2,000 pipelined 4 KiB writes of 0xa5, every other 4 KiB block of the first 16 MiB. */
  async function benchWrites(server: NbdServer): Promise<void> {
    await run('qemu-img', ['bench', '-f', 'raw', '-w', '-c', '2000', '-d', '8', '-s', '4096', '-S', '8192', '--pattern=165', server.uriFor('disk1')]);
  }

  /** Every written block (the even ones below 4,000) holds the pattern and every other one is still zero. */
  async function expectWritten(): Promise<void> {
    const fh = await open(join(dir, 'disk1.img'), 'r');
    try {
      const data = Buffer.alloc(16 * 1024 * 1024);
      await fh.read(data, 0, data.length, 0);
      for (let block = 0; block < 4096; block++) {
        const bytes = data.subarray(block * 4096, (block + 1) * 4096);
        const want = block % 2 === 0 && block < 4000 ? 0xa5 : 0;
        if (!bytes.every((b) => b === want)) throw new Error(`block ${block} does not hold 0x${want.toString(16)}`);
      }
    } finally {
      await fh.close();
    }
  }

  it.skipIf(!canServe)('[qemu-img] spins between a pipelining client\'s requests, and every write lands', async () => {
    const server = await serve();
    await benchWrites(server);
    await expectWritten();
    expect(server.stats().spin.spins).toBeGreaterThan(0);
  });

  it.skipIf(!canServe)('[qemu-img] never spins when its length is 0', async () => {
    const server = await serve(0);
    await benchWrites(server);
    await expectWritten();
    expect(server.stats().spin).toEqual({ spins: 0, hits: 0 });
  });

  it.skipIf(!canServe)('[qemu-img] never spins while another connection is still negotiating (its handshake may wait on the device)', async () => {
    const server = await serve();
    const pending = createConnection(join(dir, 's0.sock'));
    await new Promise<void>((resolve) => pending.once('data', () => resolve())); // the greeting: it waits for our flags now
    try {
      await benchWrites(server);
      await expectWritten();
      expect(server.stats().spin.spins).toBe(0);
    } finally {
      pending.destroy();
    }
  });

  it.skipIf(!canServe || !hasCommand('nbdcopy'))('[nbdcopy] a spin of 5 s never holds back new connections, other connections\' requests, or requests on the thread pool', async () => {
    const server = await serve(5_000_000);
    const source = join(dir, 'source.raw');
    await writeFile(source, Buffer.alloc(8 * 1024 * 1024, 0x5a));
    const started = performance.now();
    // nbdcopy opens one connection, then three more, and writes 1 MiB requests
    // over all four; each write goes to the thread pool, whose completion the
    // spin cannot see. A spin blind to any of these stalls the copy for 5 s.
    await run('nbdcopy', ['--request-size=1048576', source, server.uriFor('disk1')]);
    expect(performance.now() - started).toBeLessThan(5_000);
    const fh = await open(join(dir, 'disk1.img'), 'r');
    const head = Buffer.alloc(8 * 1024 * 1024);
    await fh.read(head, 0, head.length, 0);
    await fh.close();
    expect(head.every((b) => b === 0x5a)).toBe(true);
  }, 30_000);
});
