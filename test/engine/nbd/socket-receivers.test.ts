/**
 * SocketReceivers (engine/nbd/socket-receivers.ts): worker threads that
 * receive a run of bytes from a socket's descriptor into a buffer of the main
 * thread. The bytes must land in order and whole, however the peer sends them;
 * a hang-up, an abort and busy workers must each be reported as such.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { ABORT_POLL_MS, SocketReceivers } from '../../../engine/nbd/socket-receivers.js';
import type { Received, StreamEnd, StreamFile, WriteAfter } from '../../../engine/nbd/socket-receivers.js';
import { RawNbdClient } from '../../helpers/nbd-raw-client.js';

const KiB = 1024;
const cleanup: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** Numbered bytes: byte i of the run is distinguishable from its neighbours' positions. */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i + 4 <= n; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return b;
}

interface Pair {
  /** The accepted side, not reading (as a caller of tryReceive must leave it). */
  ours: Socket;
  fd: number;
  client: Socket;
}

async function pair(): Promise<Pair> {
  let server: Server | null = null;
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer({ pauseOnConnect: true }, resolve);
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const s = server as unknown as Server;
  const address = s.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const client = createConnection(address.port, '127.0.0.1');
  const ours = await accepted;
  cleanup.push(() => {
    client.destroy();
    ours.destroy();
    return new Promise<void>((resolve) => s.close(() => resolve()));
  });
  const fd = (ours as unknown as { _handle: { fd: number } })._handle.fd;
  expect(fd).toBeGreaterThan(2);
  return { ours, fd, client };
}

async function receivers(max: number, goWaitMs?: number, streamIdleMs?: number): Promise<SocketReceivers> {
  const r = new SocketReceivers(max, { ...(goWaitMs === undefined ? {} : { goWaitMs }), ...(streamIdleMs === undefined ? {} : { streamIdleMs }) });
  cleanup.push(() => r.close());
  await r.start();
  expect(r.stats().workers).toBe(max);
  return r;
}

function receive(r: SocketReceivers, fd: number, into: Buffer): { done: Promise<Received>; abort: () => void } {
  let resolve: (v: Received) => void = () => {};
  const done = new Promise<Received>((res) => (resolve = res));
  const job = r.tryReceive(fd, into, resolve);
  if (job === null) throw new Error('no worker free');
  return { done, abort: () => job.abort() };
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('SocketReceivers', () => {
  it('receives 3 MiB sent in uneven pieces with pauses between them, every byte in place, into a view inside a larger buffer', async () => {
    const r = await receivers(1);
    const { fd, client } = await pair();
    const sent = pattern(3 * 1024 * KiB, 7);
    const whole = Buffer.alloc(sent.length + 8192, 0xee);
    const into = whole.subarray(4096, 4096 + sent.length);
    const { done } = receive(r, fd, into);
    // Uneven pieces, some after pauses long enough for the worker to poll.
    let at = 0;
    for (const size of [1, 4095, 70 * KiB, 333, 900 * KiB]) {
      client.write(sent.subarray(at, at + size));
      at += size;
      await pause(ABORT_POLL_MS * 2);
    }
    client.write(sent.subarray(at));
    const result = await done;
    expect(result).toEqual({ bytes: sent.length, eof: false, errno: 0 });
    expect(into.equals(sent)).toBe(true);
    // Nothing written outside the view.
    expect(whole.subarray(0, 4096).every((b) => b === 0xee)).toBe(true);
    expect(whole.subarray(4096 + sent.length).every((b) => b === 0xee)).toBe(true);
    expect(r.stats()).toMatchObject({ busy: 0, receives: 1, bytes: sent.length });
  });

  it('takes exactly the bytes asked for: what follows stays in the socket for the next reader', async () => {
    const r = await receivers(1);
    const { ours, fd, client } = await pair();
    const sent = pattern(600 * KiB, 3);
    client.write(sent);
    const into = Buffer.alloc(512 * KiB);
    expect((await receive(r, fd, into).done).bytes).toBe(into.length);
    expect(into.equals(sent.subarray(0, into.length))).toBe(true);
    // The rest is read by the socket itself, in order.
    const rest: Buffer[] = [];
    let got = 0;
    await new Promise<void>((resolve) => {
      ours.on('data', (d: Buffer) => {
        rest.push(d);
        got += d.length;
        if (got >= sent.length - into.length) resolve();
      });
      ours.resume();
    });
    expect(Buffer.concat(rest).equals(sent.subarray(into.length))).toBe(true);
  });

  it('reports a hang-up with the bytes that came before it', async () => {
    const r = await receivers(1);
    const { fd, client } = await pair();
    const into = Buffer.alloc(256 * KiB);
    const { done } = receive(r, fd, into);
    const sent = pattern(100 * KiB, 11);
    client.end(sent);
    const result = await done;
    expect(result).toEqual({ bytes: sent.length, eof: true, errno: 0 });
    expect(into.subarray(0, sent.length).equals(sent)).toBe(true);
  });

  it('ends a receive that waits for bytes on abort(), within a few poll intervals, keeping what arrived', async () => {
    const r = await receivers(1);
    const { fd, client } = await pair();
    const into = Buffer.alloc(256 * KiB);
    const { done, abort } = receive(r, fd, into);
    client.write(pattern(10 * KiB, 5));
    await pause(ABORT_POLL_MS * 3);
    const asked = Date.now();
    abort();
    const result = await done;
    expect(Date.now() - asked).toBeLessThan(ABORT_POLL_MS * 25);
    expect(result).toEqual({ bytes: 10 * KiB, eof: false, errno: 0 });
    // The worker is free again and takes the next receive.
    const next = receive(r, fd, Buffer.alloc(4 * KiB));
    client.write(pattern(4 * KiB, 6));
    expect((await next.done).bytes).toBe(4 * KiB);
  });

  it('declines when every worker is busy, and before any has started', async () => {
    const cold = new SocketReceivers(1);
    cleanup.push(() => cold.close());
    const { fd, client } = await pair();
    // Not started: declines (and starts one for later).
    expect(cold.tryReceive(fd, Buffer.alloc(4096), () => {})).toBeNull();
    await cold.start();
    const first = receive(cold, fd, Buffer.alloc(4096));
    expect(cold.tryReceive(fd, Buffer.alloc(4096), () => {})).toBeNull();
    expect(cold.stats()).toMatchObject({ workers: 1, busy: 1 });
    client.write(pattern(4096, 1));
    expect((await first.done).bytes).toBe(4096);
  });

  it('reports the errno of a descriptor that is not a socket', async () => {
    const r = await receivers(1);
    const fd = openSync('/dev/null', 'r');
    cleanup.push(() => closeSync(fd));
    const into = Buffer.alloc(4096);
    const result = await receive(r, fd, into).done;
    expect(result.bytes).toBe(0);
    expect(result.errno).toBe(88); // ENOTSOCK
  });

  it('close() ends a receive under way and the workers', async () => {
    const r = new SocketReceivers(2);
    await r.start();
    const { fd } = await pair();
    const { done } = receive(r, fd, Buffer.alloc(64 * KiB));
    await r.close();
    expect((await done).bytes).toBe(0);
    expect(r.stats().workers).toBe(0);
    expect(r.tryReceive(fd, Buffer.alloc(4096), () => {})).toBeNull();
  });
});

/** A file of `size` bytes of 0xee, opened with `flags`, removed afterwards. */
function scratchFile(size: number, flags: string): { path: string; fd: number } {
  const dir = mkdtempSync(join(tmpdir(), 'receivers-'));
  const path = join(dir, 'f');
  writeFileSync(path, Buffer.alloc(size, 0xee));
  const fd = openSync(path, flags);
  cleanup.push(() => {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, fd };
}

/** A receive with a write after it; the events in the order they came. */
function receiveAndWrite(r: SocketReceivers, fd: number, into: Buffer, write: Omit<WriteAfter, 'done'>) {
  const events: string[] = [];
  let received: (v: Received) => void = () => {};
  let wrote: (v: number) => void = () => {};
  const done = new Promise<Received>((res) => (received = res));
  const written = new Promise<number>((res) => (wrote = res));
  const job = r.tryReceive(
    fd,
    into,
    (v) => {
      events.push('received');
      received(v);
    },
    {
      ...write,
      done: (v) => {
        events.push(`wrote ${v}`);
        wrote(v);
      },
    },
  );
  if (job === null) throw new Error('no worker free');
  return { done, written, events, abort: () => job.abort() };
}

describe('SocketReceivers: a write after the receive', () => {
  it('writes the head and the received bytes to the file at the position, reported after the receive', async () => {
    const r = await receivers(1);
    const { fd, client } = await pair();
    const file = scratchFile(4 * 1024 * KiB, 'r+');
    const payload = pattern(1024 * KiB, 9);
    const own = Buffer.alloc(1024 * KiB);
    payload.copy(own, 0, 0, 100 * KiB); // a head the caller already had
    const into = own.subarray(100 * KiB);
    const job = receiveAndWrite(r, fd, into, { fd: file.fd, from: own, position: 1024 * KiB });
    client.write(payload.subarray(100 * KiB));
    expect(await job.done).toEqual({ bytes: 924 * KiB, eof: false, errno: 0 });
    expect(await job.written).toBe(0);
    expect(job.events).toEqual(['received', 'wrote 0']);
    const content = readFileSync(file.path);
    expect(content.subarray(1024 * KiB, 2048 * KiB).equals(payload)).toBe(true);
    expect(content.subarray(0, 1024 * KiB).every((b) => b === 0xee)).toBe(true);
    expect(content.subarray(2048 * KiB).every((b) => b === 0xee)).toBe(true);
    expect(r.stats()).toMatchObject({ busy: 0, writes: 1, writtenBytes: 1024 * KiB });
  });

  it('writes nothing when the receive ends short (hang-up) or is aborted before it is all in', async () => {
    const r = await receivers(1);
    const file = scratchFile(256 * KiB, 'r+');
    const a = await pair();
    const short = receiveAndWrite(r, a.fd, Buffer.alloc(64 * KiB), { fd: file.fd, from: Buffer.alloc(64 * KiB, 1), position: 0 });
    a.client.end(pattern(10 * KiB, 1));
    expect((await short.done).eof).toBe(true);
    expect(await short.written).toBe(-1);
    const b = await pair();
    const aborted = receiveAndWrite(r, b.fd, Buffer.alloc(64 * KiB), { fd: file.fd, from: Buffer.alloc(64 * KiB, 2), position: 0 });
    b.client.write(pattern(10 * KiB, 2));
    await pause(ABORT_POLL_MS * 2);
    aborted.abort();
    expect((await aborted.done).bytes).toBe(10 * KiB);
    expect(await aborted.written).toBe(-1);
    expect(readFileSync(file.path).every((x) => x === 0xee)).toBe(true);
    expect(r.stats()).toMatchObject({ busy: 0, writes: 0 });
  });

  it('reports the errno of a write that fails, and the worker goes on', async () => {
    const r = await receivers(1);
    const { fd, client } = await pair();
    const file = scratchFile(64 * KiB, 'r'); // read-only: pwrite fails with EBADF
    const job = receiveAndWrite(r, fd, Buffer.alloc(8 * KiB), { fd: file.fd, from: Buffer.alloc(8 * KiB), position: 0 });
    client.write(pattern(8 * KiB, 3));
    expect((await job.done).bytes).toBe(8 * KiB);
    expect(await job.written).toBe(9); // EBADF
    const next = receive(r, fd, Buffer.alloc(4 * KiB));
    client.write(pattern(4 * KiB, 4));
    expect((await next.done).bytes).toBe(4 * KiB);
  });

  it('takes a job given the moment the last one is reported: 2000 receives and writes back to back on one worker, with the CPUs busy, none lost', async () => {
    const r = await receivers(1);
    const { fd, client } = await pair();
    const jobs = 2000;
    const file = scratchFile(jobs * 4 * KiB, 'r+');
    const sent = pattern(jobs * 4 * KiB, 6);
    client.write(sent);
    // Threads that spin, so that the worker is often descheduled between its report and its next wait.
    const hogs = [0, 1].map(() => new Worker('const end = Date.now() + 20000; while (Date.now() < end);', { eval: true }));
    cleanup.push(() => Promise.all(hogs.map((h) => h.terminate())).then(() => undefined));
    const finished = new Promise<number>((resolve) => {
      const next = (k: number): void => {
        if (k === jobs) {
          resolve(k);
          return;
        }
        const into = Buffer.alloc(4 * KiB);
        // The next job is given inside the last one's report, before the worker has gone back to waiting.
        const job = r.tryReceive(fd, into, () => undefined, { fd: file.fd, from: into, position: k * 4 * KiB, done: () => next(k + 1) });
        if (job === null) throw new Error(`no worker for job ${k}`);
      };
      next(0);
    });
    const stalled = new Promise<string>((resolve) => setTimeout(() => resolve('a job was lost'), 10000).unref());
    expect(await Promise.race([finished, stalled])).toBe(jobs);
    expect(readFileSync(file.path).equals(sent)).toBe(true);
  });

  it('close() waits for a write under way', async () => {
    const r = new SocketReceivers(1);
    await r.start();
    const { fd, client } = await pair();
    const size = 32 * 1024 * KiB; // a write of some milliseconds
    const file = scratchFile(size, 'r+');
    const job = receiveAndWrite(r, fd, Buffer.alloc(size), { fd: file.fd, from: Buffer.alloc(size, 7), position: 0 });
    client.write(pattern(size, 5));
    await job.done;
    expect(job.events).toEqual(['received']);
    await r.close();
    expect(job.events).toEqual(['received', 'wrote 0']);
    expect(readFileSync(file.path).every((x) => x === 7)).toBe(true);
  });
});

// NBD's values, written out here independently of engine/nbd/constants.ts.
const REPLY_MAGIC = 0x67446698;
const CMD_READ = 0;
const CMD_WRITE = 1;

/** An NBD request header (and payload). */
/** An NBD request's bytes (the test client's framing, engine/nbd's constants not used). */
function request(type: number, cookie: number, offset: number, length: number, payload?: Buffer): Buffer {
  return RawNbdClient.requestFrame(type, { cookie: BigInt(cookie), offset: BigInt(offset), length, ...(payload === undefined ? {} : { payload }) });
}

/** Reads `n` simple replies from the client side: [cookie, error] each. */
function replies(client: Socket, n: number): Promise<[number, number, number][]> {
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const on = (data: Buffer): void => {
      got = Buffer.concat([got, data]);
      if (got.length < 16 * n) return;
      client.off('data', on);
      resolve(Array.from({ length: n }, (_, i) => [got.readUInt32BE(16 * i), got.readUInt32BE(16 * i + 12), got.readUInt32BE(16 * i + 4)]));
    };
    client.on('data', on);
  });
}

/** A receive-and-write of a first WRITE (cookie 1) that may go on as a stream; events in order. */
function streamJob(r: SocketReceivers, fd: number, into: Buffer, file: { fd: number }, buffer: Buffer) {
  const events: string[] = [];
  let ended: (end: StreamEnd) => void = () => {};
  const end = new Promise<StreamEnd>((res) => (ended = res));
  let received: () => void = () => {};
  const done = new Promise<void>((res) => (received = res));
  const job = r.tryReceive(
    fd,
    into,
    () => {
      events.push('received');
      received();
    },
    {
      fd: file.fd,
      from: into,
      position: 0,
      done: (wrote, answered) => void events.push(`wrote ${wrote}${answered ? ' answered' : ''}`),
      stream: {
        cookieHigh: 0,
        cookieLow: 1,
        buffer,
        minLength: 64 * KiB,
        alignment: 512,
        ended: (e) => {
          events.push('ended');
          ended(e);
        },
      },
    },
  );
  if (job === null) throw new Error('no worker free');
  return { job, events, done, end };
}

describe('SocketReceivers: a stream after a write', () => {
  it('without a go within goWaitMs it is declined: the write is reported unanswered and the socket given back unread', async () => {
    const r = await receivers(1, 30);
    const { fd, client } = await pair();
    const file = scratchFile(1024 * KiB, 'r+');
    const s = streamJob(r, fd, Buffer.alloc(64 * KiB), file, Buffer.alloc(64 * KiB));
    const next = request(CMD_READ, 2, 0, 4096);
    client.write(Buffer.concat([pattern(64 * KiB, 1), next]));
    const end = await s.end;
    expect(s.events).toEqual(['received', 'wrote 0', 'ended']);
    expect(end).toMatchObject({ writes: 0, bytes: 0, payload: 0 });
    expect(end.header.length).toBe(0);
    expect(s.job.go({ fd: file.fd, base: 0, size: 1024 * KiB, marks: null, cow: null })).toBe(false);
    // The next request is still in the socket.
    const rest = receive(r, fd, Buffer.alloc(28));
    expect((await rest.done).bytes).toBe(28);
    expect(r.stats()).toMatchObject({ busy: 0, streams: 0, streamedWrites: 0 });
    expect(readFileSync(file.path).subarray(0, 64 * KiB).equals(pattern(64 * KiB, 1))).toBe(true);
  });

  it('with a go it answers the first WRITE, serves the plain WRITEs after it (written, marked, answered) and gives back the first other request', async () => {
    const r = await receivers(1, 2000);
    const { fd, client } = await pair();
    const file = scratchFile(1024 * KiB, 'r+');
    const table = new Uint8Array(new SharedArrayBuffer(16)); // 64 KiB blocks
    table[15] = 9;
    const s = streamJob(r, fd, Buffer.alloc(64 * KiB), file, Buffer.alloc(128 * KiB));
    const answers = replies(client, 4);
    client.write(pattern(64 * KiB, 1));
    await s.done;
    const marks: StreamFile['marks'] = { table, shift: 16, number: 3 };
    expect(s.job.go({ fd: file.fd, base: 0, size: 1024 * KiB, marks, cow: null })).toBe(true);
    const a = pattern(128 * KiB, 2);
    const b = pattern(64 * KiB, 3);
    const c = pattern(64 * KiB, 4);
    client.write(Buffer.concat([request(CMD_WRITE, 2, 256 * KiB, a.length, a), request(CMD_WRITE, 3, 512 * KiB, b.length, b), request(CMD_WRITE, 4, 960 * KiB, c.length, c), request(CMD_READ, 5, 0, 4096)]));
    expect(await answers).toEqual([
      [REPLY_MAGIC, 1, 0],
      [REPLY_MAGIC, 2, 0],
      [REPLY_MAGIC, 3, 0],
      [REPLY_MAGIC, 4, 0],
    ]);
    const end = await s.end;
    expect(s.events).toEqual(['received', 'wrote 0 answered', 'ended']);
    expect(end).toMatchObject({ writes: 3, bytes: 256 * KiB, payload: 0, eof: false, errno: 0 });
    expect(end.header.equals(request(CMD_READ, 5, 0, 4096))).toBe(true);
    const content = readFileSync(file.path);
    expect(content.subarray(256 * KiB, 384 * KiB).equals(a)).toBe(true);
    expect(content.subarray(512 * KiB, 576 * KiB).equals(b)).toBe(true);
    expect(content.subarray(960 * KiB).equals(c)).toBe(true);
    expect(content.subarray(64 * KiB, 256 * KiB).every((x) => x === 0xee)).toBe(true);
    // Raised to the number, never lowered (block 15 had a newer one); the first WRITE too, before the worker answered it
    // (its caller marks it only once it learns it was written: a client that reads the table once answered must see it).
    expect([...table]).toEqual([3, 0, 0, 0, 3, 3, 0, 0, 3, 0, 0, 0, 0, 0, 0, 9]);
    expect(r.stats()).toMatchObject({ busy: 0, streams: 1, streamedWrites: 3, streamedBytes: 256 * KiB });
  });

  it('gives back a WRITE that is too short, unaligned, too long or past the end, with its header only', async () => {
    const file = scratchFile(1024 * KiB, 'r+');
    const cases: [string, Buffer][] = [
      ['too short', request(CMD_WRITE, 2, 0, 4096)],
      ['unaligned', request(CMD_WRITE, 2, 100, 64 * KiB)],
      ['too long for the buffer', request(CMD_WRITE, 2, 0, 256 * KiB)],
      ['past the end', request(CMD_WRITE, 2, 1000 * KiB, 64 * KiB)],
    ];
    for (const [what, header] of cases) {
      const r = await receivers(1, 2000);
      const { fd, client } = await pair();
      const s = streamJob(r, fd, Buffer.alloc(64 * KiB), file, Buffer.alloc(128 * KiB));
      client.write(pattern(64 * KiB, 1));
      await s.done;
      expect(s.job.go({ fd: file.fd, base: 0, size: 1024 * KiB, marks: null, cow: null })).toBe(true);
      client.write(header);
      const end = await s.end;
      expect(end.writes, what).toBe(0);
      expect(end.header.equals(header), what).toBe(true);
      expect(end.payload, what).toBe(0);
    }
  });

  it('stop() while it receives a payload: the gate is free at once, and that WRITE comes back whole and unwritten', async () => {
    const r = await receivers(1, 2000);
    const { fd, client } = await pair();
    const file = scratchFile(1024 * KiB, 'r+');
    const buffer = Buffer.alloc(128 * KiB);
    const s = streamJob(r, fd, Buffer.alloc(64 * KiB), file, buffer);
    client.write(pattern(64 * KiB, 1));
    await s.done;
    expect(s.job.go({ fd: file.fd, base: 0, size: 1024 * KiB, marks: null, cow: null })).toBe(true);
    const payload = pattern(128 * KiB, 2);
    const frame = request(CMD_WRITE, 2, 512 * KiB, payload.length, payload);
    client.write(frame.subarray(0, 28 + 10 * KiB));
    await pause(ABORT_POLL_MS * 2);
    let free = false;
    s.job.stop(() => (free = true));
    expect(free).toBe(true);
    client.write(frame.subarray(28 + 10 * KiB));
    const end = await s.end;
    expect(end).toMatchObject({ writes: 0, payload: payload.length });
    expect(end.header.equals(frame.subarray(0, 28))).toBe(true);
    expect(buffer.equals(payload)).toBe(true);
    expect(readFileSync(file.path).subarray(512 * KiB, 640 * KiB).every((x) => x === 0xee)).toBe(true);
  });

  it('abort() ends it at once, mid-payload, with the bytes that came', async () => {
    const r = await receivers(1, 2000);
    const { fd, client } = await pair();
    const file = scratchFile(1024 * KiB, 'r+');
    const s = streamJob(r, fd, Buffer.alloc(64 * KiB), file, Buffer.alloc(128 * KiB));
    client.write(pattern(64 * KiB, 1));
    await s.done;
    expect(s.job.go({ fd: file.fd, base: 0, size: 1024 * KiB, marks: null, cow: null })).toBe(true);
    const frame = request(CMD_WRITE, 2, 0, 128 * KiB, pattern(128 * KiB, 2));
    client.write(frame.subarray(0, 28 + 10 * KiB));
    await pause(ABORT_POLL_MS * 2);
    s.job.abort();
    const end = await s.end;
    expect(end).toMatchObject({ writes: 0, payload: 10 * KiB });
    expect(end.header.length).toBe(28);
    expect(r.stats().busy).toBe(0);
  });
});

describe('SocketReceivers: a stream that copies on write (StreamCow)', () => {
  const CHUNK = 64 * KiB;
  /** 16 chunks of 64 KiB; chunk 5 STORED (needs no copy); a window of chunks 2-7 whose regions are (k + 1) chunks into the storage. */
  function window(fdIn: number, fdOut: number): NonNullable<StreamFile['cow']> {
    const states = new Uint8Array(new SharedArrayBuffer(16));
    states[5] = 2;
    const targets = new Float64Array(new SharedArrayBuffer(8 * 6));
    for (let k = 0; k < 6; k++) targets[k] = k === 3 ? -1 : (k + 1) * CHUNK;
    return { states, chunkShift: 16, fdIn, fdOut, first: 2, count: 6, targets, copied: new Uint8Array(new SharedArrayBuffer(6)) };
  }

  it('copies each chunk of its window once, before the first write to it, and gives back unwritten a WRITE that touches a NEW chunk outside the window', async () => {
    const r = await receivers(1, 2000, 60_000); // the client checks files between its writes
    const { fd, client } = await pair();
    const file = scratchFile(1024 * KiB, 'r+');
    const old = pattern(1024 * KiB, 7);
    writeFileSync(file.path, old);
    const storage = scratchFile(1024 * KiB, 'r+');
    const cow = window(file.fd, storage.fd);
    const s = streamJob(r, fd, Buffer.alloc(64 * KiB), file, Buffer.alloc(192 * KiB));
    const first = replies(client, 3);
    client.write(pattern(64 * KiB, 1));
    await s.done;
    expect(s.job.go({ fd: file.fd, base: 0, size: 1024 * KiB, marks: null, cow })).toBe(true);
    const a = pattern(128 * KiB, 2); // the second half of chunk 2, chunk 3, the first half of 4: all three copied whole
    const b = pattern(64 * KiB, 3); // chunk 5: STORED, no copy
    client.write(Buffer.concat([request(CMD_WRITE, 2, 2 * CHUNK + 32 * KiB, a.length, a), request(CMD_WRITE, 3, 5 * CHUNK, b.length, b)]));
    expect((await first).map(([, cookie, error]) => [cookie, error])).toEqual([
      [1, 0],
      [2, 0],
      [3, 0],
    ]);
    expect([...cow.copied]).toEqual([1, 1, 1, 0, 0, 0]);
    let stored = readFileSync(storage.path);
    expect(stored.subarray(CHUNK, 4 * CHUNK).equals(old.subarray(2 * CHUNK, 5 * CHUNK))).toBe(true);
    expect(stored.subarray(4 * CHUNK).every((x) => x === 0xee)).toBe(true);
    // Chunk 2 again: copied already, so its region is not copied to a second time.
    writeFileSync(storage.path, Buffer.alloc(CHUNK, 0x55));
    const c = pattern(64 * KiB, 4);
    const d = pattern(64 * KiB, 5); // chunk 9: NEW, not the stream's
    const second = replies(client, 1);
    client.write(Buffer.concat([request(CMD_WRITE, 4, 2 * CHUNK, c.length, c), request(CMD_WRITE, 5, 9 * CHUNK, d.length, d)]));
    expect(await second).toEqual([[REPLY_MAGIC, 4, 0]]);
    const end = await s.end;
    expect(end).toMatchObject({ writes: 3, payload: 64 * KiB });
    expect(end.header.equals(request(CMD_WRITE, 5, 9 * CHUNK, d.length))).toBe(true);
    stored = readFileSync(storage.path);
    expect(stored.subarray(0, CHUNK).every((x) => x === 0x55)).toBe(true);
    const content = readFileSync(file.path);
    expect(content.subarray(2 * CHUNK, 3 * CHUNK).equals(c)).toBe(true);
    expect(content.subarray(3 * CHUNK, 4 * CHUNK + 32 * KiB).equals(a.subarray(32 * KiB))).toBe(true);
    expect(content.subarray(5 * CHUNK, 6 * CHUNK).equals(b)).toBe(true);
    expect(content.subarray(9 * CHUNK, 10 * CHUNK).equals(old.subarray(9 * CHUNK, 10 * CHUNK))).toBe(true);
    expect([...cow.copied]).toEqual([1, 1, 1, 0, 0, 0]);
  });

  it('a copy that fails: marked failed (2), and that WRITE is given back whole and unwritten', async () => {
    const r = await receivers(1, 2000);
    const { fd, client } = await pair();
    const file = scratchFile(1024 * KiB, 'r+');
    const storage = scratchFile(1024 * KiB, 'r'); // copy_file_range into it fails (EBADF)
    const cow = window(file.fd, storage.fd);
    const s = streamJob(r, fd, Buffer.alloc(64 * KiB), file, Buffer.alloc(192 * KiB));
    client.write(pattern(64 * KiB, 1));
    await s.done;
    expect(s.job.go({ fd: file.fd, base: 0, size: 1024 * KiB, marks: null, cow })).toBe(true);
    const a = pattern(64 * KiB, 2);
    client.write(request(CMD_WRITE, 2, 3 * CHUNK, a.length, a));
    const end = await s.end;
    expect(end).toMatchObject({ writes: 0, payload: 64 * KiB });
    expect(end.header.equals(request(CMD_WRITE, 2, 3 * CHUNK, a.length))).toBe(true);
    expect([...cow.copied]).toEqual([0, 2, 0, 0, 0, 0]);
    expect(readFileSync(file.path).subarray(3 * CHUNK, 4 * CHUNK).every((x) => x === 0xee)).toBe(true);
  });
});
