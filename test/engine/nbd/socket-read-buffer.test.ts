/**
 * withReadBuffer: an accepted socket moved to reads into a buffer of its own
 * (engine/nbd/socket-read-buffer.ts) delivers the same bytes in larger pieces,
 * honours pause()/resume(), and still ends and writes like any socket.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NBD_CMD_READ, NBD_CMD_WRITE, NBD_REQUEST_MAGIC, NBD_REQUEST_SIZE } from '../../../engine/nbd/constants.js';
import { DIRECT_READ_MAX, DIRECT_READ_MIN, fromReadSlab, ownedParts, withReadBuffer } from '../../../engine/nbd/socket-read-buffer.js';
import type { ReadRoute, SlabUse } from '../../../engine/nbd/socket-read-buffer.js';
import { WritePayloadScanner } from '../../../engine/nbd/write-payload-scanner.js';
import { SocketReceivers } from '../../../engine/nbd/socket-receivers.js';

const KiB = 1024;
let dir: string;
let server: Server | null;
const sockets: Socket[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-read-buffer-'));
  server = null;
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await rm(dir, { recursive: true, force: true });
});

/** A server whose accepted sockets go through withReadBuffer; resolves with the first one and a connected client. */
async function pair(size: number, route?: ReadRoute, receivers?: SocketReceivers, slabUse?: SlabUse): Promise<{ ours: Socket; client: Socket }> {
  const path = join(dir, 's.sock');
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer({ pauseOnConnect: true }, (s) => resolve(withReadBuffer(s, size, route, undefined, receivers, slabUse)));
  });
  await new Promise<void>((resolve) => server?.listen(path, resolve));
  const client = createConnection(path);
  sockets.push(client);
  const ours = await accepted;
  sockets.push(ours);
  return { ours, client };
}

/** An NBD request header (the fields the payload scanner follows). */
function header(type: number, length: number): Buffer {
  const h = Buffer.alloc(NBD_REQUEST_SIZE);
  h.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  h.writeUInt16BE(type, 6);
  h.writeUInt32BE(length, 24);
  return h;
}

/** Collects what `ours` emits, with each piece's offset in the stream. */
function collect(ours: Socket): { pieces: { data: Buffer; at: number }[]; total: () => number; until: (n: number) => Promise<void> } {
  const pieces: { data: Buffer; at: number }[] = [];
  let total = 0;
  let waiter: (() => void) | null = null;
  ours.on('data', (d: Buffer) => {
    pieces.push({ data: d, at: total });
    total += d.length;
    waiter?.();
  });
  const until = (n: number): Promise<void> =>
    new Promise<void>((resolve) => {
      waiter = () => total >= n && resolve();
      waiter();
    });
  return { pieces, total: () => total, until };
}

/**
 * Sends `count` WRITEs of 1 MiB, each with its header in one client write and
 * waiting for the one before to arrive, and checks what withReadBuffer made of
 * them: the payload's first bytes, read with the header into the slab, were
 * moved into the payload's own buffer (every payload byte is in one buffer of
 * its own, not in a slab), and so the slab was not used up (one slab for all
 * the headers).
 */
async function checkPayloadHeadsMove(count: number, receivers?: SocketReceivers): Promise<void> {
  const scanner = new WritePayloadScanner();
  scanner.start([]);
  const { ours, client } = await pair(256 * KiB, scanner, receivers);
  const payloadLength = 1024 * KiB;
  const { pieces, total, until } = collect(ours);
  const sent: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const payload = Buffer.alloc(payloadLength);
    for (let j = 0; j < payloadLength; j += 4) payload.writeUInt32LE(i * payloadLength + j, j);
    const frame = Buffer.concat([header(NBD_CMD_WRITE, payloadLength), payload]);
    sent.push(frame);
    const arrived = until(total() + frame.length);
    client.write(frame);
    await arrived;
  }
  expect(Buffer.concat(pieces.map((p) => p.data)).equals(Buffer.concat(sent))).toBe(true);
  const frameLength = NBD_REQUEST_SIZE + payloadLength;
  const headersSlabs = new Set<ArrayBufferLike>();
  for (let i = 0; i < count; i++) {
    const start = i * frameLength;
    const inHeader = pieces.filter((p) => p.at < start + NBD_REQUEST_SIZE && p.at + p.data.length > start);
    const inPayload = pieces.filter((p) => p.at + p.data.length > start + NBD_REQUEST_SIZE && p.at < start + frameLength);
    for (const p of inHeader) {
      expect(fromReadSlab(p.data)).toBe(true);
      headersSlabs.add(p.data.buffer);
      // The slab piece ends with the header: the payload's bytes that came with it were moved.
      expect(p.at + p.data.length, `request ${i}`).toBe(start + NBD_REQUEST_SIZE);
    }
    expect(inPayload.every((p) => !fromReadSlab(p.data)), `request ${i}`).toBe(true);
    expect(new Set(inPayload.map((p) => p.data.buffer)).size, `request ${i}`).toBe(1);
  }
  expect(headersSlabs.size).toBe(1);
}

describe('withReadBuffer', () => {
  it('delivers every byte, in pieces larger than Node\'s 64 KiB reads, and answers through the same socket', async () => {
    const { ours, client } = await pair(256 * KiB);
    const sent = Buffer.alloc(4096 * KiB);
    for (let i = 0; i < sent.length; i += 4) sent.writeUInt32LE(i, i);
    const pieces: Buffer[] = [];
    let total = 0;
    const all = new Promise<void>((resolve) =>
      ours.on('data', (d: Buffer) => {
        pieces.push(d);
        total += d.length;
        if (total === sent.length) resolve();
      }),
    );
    client.write(sent);
    await all;
    expect(Buffer.concat(pieces).equals(sent)).toBe(true);
    expect(Math.max(...pieces.map((p) => p.length))).toBeGreaterThan(64 * KiB);
    expect(Math.max(...pieces.map((p) => p.length))).toBeLessThanOrEqual(256 * KiB);
    // Each full read filled a slab of its own.
    expect(pieces.every((p) => fromReadSlab(p))).toBe(true);
    expect(new Set(pieces.map((p) => p.buffer)).size).toBe(pieces.length);

    const answer = new Promise<Buffer>((resolve) => client.once('data', resolve));
    ours.write('pong');
    expect((await answer).toString()).toBe('pong');
  });

  it('stops delivering while paused and goes on after resume(); the peer\'s end is seen', async () => {
    const { ours, client } = await pair(64 * KiB);
    let got = 0;
    let paused = false;
    ours.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= 16 * KiB && !paused) {
        paused = true;
        ours.pause();
      }
    });
    const ended = new Promise<void>((resolve) => ours.once('end', resolve));
    client.write(Buffer.alloc(16 * KiB));
    while (got < 16 * KiB) await new Promise((r) => setTimeout(r, 5));
    client.end(Buffer.alloc(48 * KiB));
    await new Promise((r) => setTimeout(r, 100));
    expect(got).toBe(16 * KiB);
    ours.resume();
    await ended;
    expect(got).toBe(64 * KiB);
  });

  it('reads a large WRITE payload still to come straight into a buffer of its own, in several reads, and nothing past it', async () => {
    const scanner = new WritePayloadScanner();
    scanner.start([]);
    const { ours, client } = await pair(256 * KiB, scanner);
    const payloadLength = 3 * 1024 * KiB; // more than DIRECT_READ_MAX: two buffers of its own
    const payload = Buffer.alloc(payloadLength);
    for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE(i, i);
    const after = Buffer.concat([header(NBD_CMD_READ, 4096), header(NBD_CMD_WRITE, 512), Buffer.alloc(512, 7)]);
    const sent = Buffer.concat([header(NBD_CMD_WRITE, payloadLength), payload, after]);
    const pieces: { data: Buffer; at: number }[] = [];
    let total = 0;
    const all = new Promise<void>((resolve) =>
      ours.on('data', (d: Buffer) => {
        pieces.push({ data: d, at: total });
        total += d.length;
        if (total === sent.length) resolve();
      }),
    );
    // The header with a little payload, then the rest in uneven slices with pauses:
    // a buffer of its own is filled by several reads.
    let at = 0;
    for (const n of [NBD_REQUEST_SIZE + 1000, 100 * KiB, 300 * KiB, 7, 900 * KiB, sent.length]) {
      const end = Math.min(sent.length, at + n);
      client.write(sent.subarray(at, end));
      at = end;
      await new Promise((r) => setTimeout(r, 20));
    }
    await all;
    expect(Buffer.concat(pieces.map((p) => p.data)).equals(sent)).toBe(true);

    const payloadStart = NBD_REQUEST_SIZE;
    const payloadEnd = payloadStart + payloadLength;
    // The pieces read into a payload's own buffer (not a read slab).
    const direct = pieces.filter((p) => !fromReadSlab(p.data));
    const ownBuffers = new Set(direct.map((p) => p.data.buffer));
    expect(ownBuffers.size).toBeGreaterThanOrEqual(2);
    for (const b of ownBuffers) {
      expect(b.byteLength).toBeGreaterThanOrEqual(DIRECT_READ_MIN);
      expect(b.byteLength).toBeLessThanOrEqual(DIRECT_READ_MAX);
    }
    // Several reads filled one of them, and those pieces lie inside the payload.
    expect(Math.max(...[...ownBuffers].map((b) => direct.filter((p) => p.data.buffer === b).length))).toBeGreaterThan(1);
    for (const p of direct) {
      expect(p.at).toBeGreaterThanOrEqual(payloadStart);
      expect(p.at + p.data.length).toBeLessThanOrEqual(payloadEnd);
    }
    // Most of the payload came that way; what follows it came through the shared buffer.
    expect(direct.reduce((n, p) => n + p.data.length, 0)).toBeGreaterThan(payloadLength - 256 * KiB);
    const last = pieces[pieces.length - 1]!;
    expect(last.at + last.data.length).toBe(sent.length);
    expect(direct).not.toContain(last);
  });

  it('moves the first bytes of a large WRITE payload, read with its header into the slab, into the payload\'s own buffer; 20 such WRITEs use one slab', async () => {
    await checkPayloadHeadsMove(20);
  });

  it('small reads share a slab, one after another, and none overwrites an earlier one that is still held', async () => {
    const { ours, client } = await pair(64 * KiB);
    const pieces: Buffer[] = [];
    const sent: Buffer[] = [];
    let got = 0;
    let waiter: (() => void) | null = null;
    ours.on('data', (d: Buffer) => {
      pieces.push(d);
      got += d.length;
      waiter?.();
    });
    // 1,500 messages of 100 bytes, each sent once the one before arrived: that is
    // 150 KiB through slabs of 64 KiB, so the slabs change too.
    for (let i = 0; i < 1500; i++) {
      const m = Buffer.alloc(100, i & 0xff);
      m.writeUInt32BE(i, 0);
      sent.push(m);
      const want = (i + 1) * 100;
      const arrived = new Promise<void>((resolve) => (waiter = () => got >= want && resolve()));
      client.write(m);
      await arrived;
    }
    expect(Buffer.concat(pieces).equals(Buffer.concat(sent))).toBe(true);
    const slabsUsed = new Set(pieces.map((p) => p.buffer));
    expect(pieces.every((p) => fromReadSlab(p))).toBe(true);
    expect(slabsUsed.size).toBeGreaterThanOrEqual(3);
    expect(slabsUsed.size).toBeLessThan(pieces.length / 100);
  });
});

/**
 * A consumer like the transmission: it takes each piece in a microtask after
 * its 'data' event (so the next read's buffer is asked for before it has), and
 * keeps every `keepEvery`th piece for a few milliseconds (a request running).
 * Its SlabUse tells the truth about that. Every piece must still hold what
 * arrived in it when it is taken, and a kept one until it is let go.
 */
async function ringConsumer(keepEvery: number): Promise<{ pieces: Buffer[]; taken: Buffer[]; sent: Buffer[]; broken: string[] }> {
  let unread = 0;
  const kept = new Set<Buffer>();
  const slabUse: SlabUse = { unheldBeyond: (bytes) => kept.size === 0 && unread <= bytes };
  // A slab of 4 KiB: the ring goes round many times while a piece is kept.
  const { ours, client } = await pair(4 * KiB, undefined, undefined, slabUse);
  const pieces: Buffer[] = [];
  /** What each piece held when it was taken (the pieces themselves are read over later). */
  const taken: Buffer[] = [];
  const sent: Buffer[] = [];
  const broken: string[] = [];
  let got = 0;
  let waiter: (() => void) | null = null;
  ours.on('data', (d: Buffer) => {
    const copy = Buffer.from(d);
    taken.push(copy);
    const n = pieces.push(d);
    unread += d.length;
    queueMicrotask(() => {
      if (!d.equals(copy)) broken.push(`piece ${n} changed before it was taken`);
      unread -= d.length;
      got += d.length;
      if (n % keepEvery === 0) {
        kept.add(d);
        setTimeout(() => {
          if (!d.equals(copy)) broken.push(`kept piece ${n} changed while kept`);
          kept.delete(d);
        }, 1 + (n % 3));
      }
      waiter?.();
    });
  });
  // 1,500 messages of 100 bytes (150 KiB), in bursts of 1-7 sent at once, each
  // burst once the one before has been taken.
  for (let i = 0; i < 1500; ) {
    const burst: Buffer[] = [];
    for (let j = 0; j < 1 + (i % 7) && i < 1500; j++, i++) {
      const m = Buffer.alloc(100, i & 0xff);
      m.writeUInt32BE(i, 0);
      burst.push(m);
    }
    sent.push(...burst);
    const want = sent.length * 100;
    const arrived = new Promise<void>((resolve) => (waiter = () => got >= want && resolve()));
    client.write(Buffer.concat(burst));
    await arrived;
  }
  while (kept.size > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  return { pieces, taken, sent, broken };
}

describe('withReadBuffer with a SlabUse (the slab as a ring)', () => {
  it('reads into the room before and after the last read again once nothing else is held: one slab for everything', async () => {
    const { pieces, taken, sent, broken } = await ringConsumer(Infinity);
    expect(broken).toEqual([]);
    expect(Buffer.concat(taken).equals(Buffer.concat(sent))).toBe(true);
    expect(new Set(pieces.map((p) => p.buffer)).size).toBe(1);
  });

  it('never reads over a piece not yet taken or still kept', async () => {
    const { pieces, taken, sent, broken } = await ringConsumer(10);
    expect(broken).toEqual([]);
    expect(Buffer.concat(taken).equals(Buffer.concat(sent))).toBe(true);
    // Kept pieces made it move on to new slabs.
    expect(new Set(pieces.map((p) => p.buffer)).size).toBeGreaterThan(1);
  });
});

describe('withReadBuffer with receive threads', () => {
  let receivers: SocketReceivers;
  beforeEach(async () => {
    receivers = new SocketReceivers(2);
    await receivers.start();
    expect(receivers.stats().workers).toBe(2);
  });
  afterEach(() => receivers.close());

  const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const numbered = (n: number): Buffer => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i += 4) b.writeUInt32LE(i, i);
    return b;
  };

  it('receives the rest of a large WRITE payload on a worker; every byte arrives in order, and what follows the payload is read by the socket', async () => {
    const scanner = new WritePayloadScanner();
    scanner.start([]);
    const { ours, client } = await pair(256 * KiB, scanner, receivers);
    const payloadLength = 3 * 1024 * KiB;
    const after = Buffer.concat([header(NBD_CMD_READ, 4096), header(NBD_CMD_WRITE, 512), Buffer.alloc(512, 7)]);
    const sent = Buffer.concat([header(NBD_CMD_WRITE, payloadLength), numbered(payloadLength), after]);
    const { pieces, until } = collect(ours);
    let at = 0;
    for (const n of [NBD_REQUEST_SIZE + 1000, 100 * KiB, 300 * KiB, 7, 900 * KiB, sent.length]) {
      const end = Math.min(sent.length, at + n);
      client.write(sent.subarray(at, end));
      at = end;
      await pause(20);
    }
    await until(sent.length);
    expect(Buffer.concat(pieces.map((p) => p.data)).equals(sent)).toBe(true);
    const stats = receivers.stats();
    expect(stats.receives).toBeGreaterThanOrEqual(1);
    expect(stats.bytes).toBeGreaterThan(payloadLength / 2);
    // The workers' pieces are buffers of their own, inside the payload.
    const own = pieces.filter((p) => !fromReadSlab(p.data));
    expect(own.reduce((n, p) => n + p.data.length, 0)).toBeGreaterThanOrEqual(stats.bytes);
    for (const p of own) {
      expect(p.at).toBeGreaterThanOrEqual(NBD_REQUEST_SIZE);
      expect(p.at + p.data.length).toBeLessThanOrEqual(NBD_REQUEST_SIZE + payloadLength);
    }
    expect(fromReadSlab(pieces[pieces.length - 1]!.data)).toBe(true);
    expect(stats.busy).toBe(0);
  });

  it('a worker receives the rest of a large WRITE payload after its first bytes, moved out of the slab, in the same buffer; 20 such WRITEs use one slab', async () => {
    await checkPayloadHeadsMove(20, receivers);
    expect(receivers.stats().receives).toBeGreaterThanOrEqual(10);
  });

  it('a pause() during a receive holds back what follows the payload until resume()', async () => {
    const scanner = new WritePayloadScanner();
    scanner.start([]);
    const { ours, client } = await pair(256 * KiB, scanner, receivers);
    const payloadLength = 1024 * KiB;
    const first = Buffer.concat([header(NBD_CMD_WRITE, payloadLength), numbered(payloadLength)]);
    const after = Buffer.alloc(64 * KiB, 9);
    const { pieces, total, until } = collect(ours);
    // The header and a little of the payload: the rest is left to a worker.
    client.write(first.subarray(0, NBD_REQUEST_SIZE + 1000));
    await until(NBD_REQUEST_SIZE + 1000);
    await pause(20);
    expect(receivers.stats().busy).toBe(1);
    ours.pause();
    client.write(Buffer.concat([first.subarray(NBD_REQUEST_SIZE + 1000), after]));
    // The worker's bytes are delivered; nothing after them while paused.
    await until(first.length);
    await pause(100);
    expect(total()).toBe(first.length);
    expect(receivers.stats().busy).toBe(0);
    ours.resume();
    await until(first.length + after.length);
    expect(Buffer.concat(pieces.map((p) => p.data)).equals(Buffer.concat([first, after]))).toBe(true);
  });

  it('a socket destroyed during a receive closes only once the worker has let go of its descriptor', async () => {
    const scanner = new WritePayloadScanner();
    scanner.start([]);
    const { ours, client } = await pair(256 * KiB, scanner, receivers);
    const { until } = collect(ours);
    client.write(Buffer.concat([header(NBD_CMD_WRITE, 1024 * KiB), Buffer.alloc(1000)]));
    await until(NBD_REQUEST_SIZE + 1000);
    await pause(20);
    expect(receivers.stats().busy).toBe(1);
    const busyAtClose = new Promise<number>((resolve) => ours.once('close', () => resolve(receivers.stats().busy)));
    ours.destroy();
    // The close waited for the worker (which saw the abort), not the other way round.
    expect(await busyAtClose).toBe(0);
    expect(receivers.stats().receives).toBe(1);
    // The client sees the hang-up.
    await new Promise<void>((resolve) => {
      client.once('close', () => resolve());
      client.resume();
    });
  });
});

describe('ownedParts', () => {
  it('copies the pieces of a payload smaller than the slab that lie in it (joined when all do) and keeps the others as they are', async () => {
    const { ours, client } = await pair(64 * KiB);
    const piece = new Promise<Buffer>((resolve) => ours.once('data', resolve));
    client.write(Buffer.alloc(1000, 5));
    const inSlab = await piece;
    expect(fromReadSlab(inSlab)).toBe(true);

    const [joined, ...none] = ownedParts([inSlab.subarray(0, 300), inSlab.subarray(300)]);
    expect(none).toEqual([]);
    expect(fromReadSlab(joined!)).toBe(false);
    expect(joined!.buffer).not.toBe(inSlab.buffer);
    expect(joined!.equals(inSlab)).toBe(true);

    const own = Buffer.alloc(64, 9);
    expect(ownedParts([own])[0]).toBe(own);
    const mixed = ownedParts([own, inSlab]);
    expect(mixed[0]).toBe(own);
    expect(fromReadSlab(mixed[1]!)).toBe(false);
    expect(mixed[1]!.equals(inSlab)).toBe(true);

    // A payload at least as large as the slab (64 KiB here) keeps its views: what it pins is no more than it is.
    const rest = Buffer.alloc(64 * KiB, 3);
    const large = ownedParts([inSlab, rest]);
    expect(large[0]).toBe(inSlab);
    expect(large[1]).toBe(rest);
  });
});
