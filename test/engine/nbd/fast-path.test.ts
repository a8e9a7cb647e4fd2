/**
 * The synchronous fast path of the transmission (BlockDevice.readToNow /
 * writeNow) and the ordering of overlapping requests on one connection: a
 * request never overtakes an earlier write it overlaps (nor a write an earlier
 * read), whichever path each takes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlksnapError } from '../../../engine/abi/errno.js';
import type { BlockDevice, BlockExtent } from '../../../engine/core/block-device.js';
import { NbdServer } from '../../../engine/nbd/server.js';
import { fromReadSlab } from '../../../engine/nbd/socket-read-buffer.js';
import { staticExports } from '../../../engine/nbd/export-source.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import type { MemoryDeviceOptions } from '../../helpers/memory-device.js';
import { RawNbdClient } from '../../helpers/nbd-raw-client.js';

// Protocol values, written out independently of engine/nbd/constants.ts.
const CMD = { READ: 0, WRITE: 1, FLUSH: 3 };
const FLAG_FUA = 1;
const OPT = { GO: 7, STRUCTURED_REPLY: 8 };
const CHUNK = { OFFSET_DATA: 1, OFFSET_HOLE: 2 };
const DONE = 1;
const KiB = 1024;
const MiB = 1024 * KiB;

/** A MemoryDevice with the fast-path methods, counting their use. */
class FastMemoryDevice extends MemoryDevice {
  readNow = 0;
  wroteNow = 0;
  /** When false, writeNow refuses (returns false) and write() must take the request. */
  acceptNow = true;

  readToNow(offset: number, length: number, target: Buffer, targetOffset: number): boolean {
    this.readNow++;
    this.data.copy(target, targetOffset, offset, offset + length);
    return true;
  }

  writeNow(offset: number, data: readonly Buffer[]): boolean {
    if (!this.acceptNow) return false;
    this.wroteNow++;
    let at = offset;
    for (const part of data) {
      this.data.set(part, at);
      at += part.length;
    }
    return true;
  }
}

let dir: string;
let server: NbdServer | null;
let clients: RawNbdClient[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-fast-path-test-'));
  server = null;
  clients = [];
});

afterEach(async () => {
  for (const c of clients) c.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Serves `dev` and returns a client past NBD_OPT_GO (with structured replies negotiated first when asked). */
async function serveAndConnect(dev: BlockDevice, { structured = false } = {}): Promise<RawNbdClient> {
  const socketPath = join(dir, 'nbd.sock');
  server = new NbdServer({ exports: staticExports([dev]), unixSocket: socketPath });
  await server.start();
  const c = await RawNbdClient.connect(socketPath);
  clients.push(c);
  if (!structured) {
    await c.goTo(dev.name);
    return c;
  }
  await c.greet();
  c.sendOption(OPT.STRUCTURED_REPLY);
  await c.readOptionReplies();
  c.sendOption(OPT.GO, RawNbdClient.infoPayload(dev.name));
  await c.readOptionReplies();
  return c;
}

/** A device whose first write() waits until release() (the later ones do not). */
function heldFirstWrite(options: Partial<MemoryDeviceOptions> = {}): { dev: FastMemoryDevice; release: () => void } {
  let release = (): void => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  let writes = 0;
  const dev = new FastMemoryDevice({
    name: 'disk1',
    capacity: 4 * MiB,
    gate: (op) => (op === 'write' && writes++ === 0 ? held : undefined),
    ...options,
  });
  return { dev, release: () => release() };
}

async function untilInside(dev: MemoryDevice): Promise<void> {
  while (dev.active === 0) await new Promise((r) => setTimeout(r, 2));
}

/** A FastMemoryDevice whose first 128 KiB are data and the rest a hole, told at once (extentsNow) and asynchronously. */
class SparseFastMemoryDevice extends FastMemoryDevice {
  extentsNow(offset: number, length: number): BlockExtent[] {
    const end = offset + length;
    const out: BlockExtent[] = [];
    if (offset < 128 * KiB) out.push({ offset, length: Math.min(end, 128 * KiB) - offset, hole: false });
    if (end > 128 * KiB) out.push({ offset: Math.max(offset, 128 * KiB), length: end - Math.max(offset, 128 * KiB), hole: true });
    return out;
  }

  extents(offset: number, length: number): Promise<BlockExtent[]> {
    return Promise.resolve(this.extentsNow(offset, length));
  }
}

/** 128 KiB of data then a hole; counts the synchronous and asynchronous extent lookups (extentsNow only when `now`). */
class CountingSparseDevice extends MemoryDevice {
  now = 0;
  later = 0;
  declare extentsNow?: (offset: number, length: number) => BlockExtent[];

  constructor(options: MemoryDeviceOptions, now = true) {
    super(options);
    if (now) {
      this.extentsNow = (offset: number, length: number): BlockExtent[] => {
        this.now++;
        return sparseRuns(offset, length);
      };
    }
  }

  extents(offset: number, length: number): Promise<BlockExtent[]> {
    this.later++;
    return Promise.resolve(sparseRuns(offset, length));
  }
}

function sparseRuns(offset: number, length: number): BlockExtent[] {
  const end = offset + length;
  const out: BlockExtent[] = [];
  if (offset < 128 * KiB) out.push({ offset, length: Math.min(end, 128 * KiB) - offset, hole: false });
  if (end > 128 * KiB) out.push({ offset: Math.max(offset, 128 * KiB), length: end - Math.max(offset, 128 * KiB), hole: true });
  return out;
}

describe('NBD fast path', () => {
  it('answers a structured READ of 64 KiB or more without holes through extentsNow + readToNow; one over a hole gets its OFFSET_HOLE chunk', async () => {
    const dev = new SparseFastMemoryDevice({ name: 'disk1', capacity: 4 * MiB });
    for (let i = 0; i < 128 * KiB; i++) dev.data[i] = (i * 7 + 1) & 0xff;
    const c = await serveAndConnect(dev, { structured: true });

    c.sendRequest(CMD.READ, { cookie: 1n, offset: 0n, length: 128 * KiB });
    const [whole, ...more] = await c.readChunks();
    expect(more).toEqual([]);
    expect([whole?.type, whole?.flags, Number(whole?.payload.readBigUInt64BE(0))]).toEqual([CHUNK.OFFSET_DATA, DONE, 0]);
    expect(whole?.payload.subarray(8).equals(dev.data.subarray(0, 128 * KiB))).toBe(true);
    expect(dev.readNow).toBe(1);

    c.sendRequest(CMD.READ, { cookie: 2n, offset: BigInt(64 * KiB), length: 128 * KiB });
    const chunks = await c.readChunks();
    expect(chunks.map((ch) => [ch.type, Number(ch.payload.readBigUInt64BE(0))])).toEqual([
      [CHUNK.OFFSET_DATA, 64 * KiB],
      [CHUNK.OFFSET_HOLE, 128 * KiB],
    ]);
    expect(chunks[0]?.payload.subarray(8).equals(dev.data.subarray(64 * KiB, 128 * KiB))).toBe(true);
    expect(dev.readNow).toBe(1); // the range with a hole took the asynchronous path
  });

  it('answers BLOCK_STATUS through extentsNow, at once; a device without it through extents()', async () => {
    const OPT_SET_META_CONTEXT = 10;
    const CMD_BLOCK_STATUS = 7;
    const FLAG_REQ_ONE = 8;
    const CHUNK_BLOCK_STATUS = 5;
    const withNow = new CountingSparseDevice({ name: 'disk1', capacity: 4 * MiB });
    const withoutNow = new CountingSparseDevice({ name: 'disk2', capacity: 4 * MiB }, false);
    const socketPath = join(dir, 'nbd.sock');
    server = new NbdServer({ exports: staticExports([withNow, withoutNow]), unixSocket: socketPath });
    await server.start();
    const statusOf = async (name: string): Promise<number[][]> => {
      const c = await RawNbdClient.connect(socketPath);
      clients.push(c);
      await c.greet();
      c.sendOption(OPT.STRUCTURED_REPLY);
      await c.readOptionReplies();
      c.sendOption(OPT_SET_META_CONTEXT, RawNbdClient.contextPayload(name, ['base:allocation']));
      await c.readOptionReplies();
      c.sendOption(OPT.GO, RawNbdClient.infoPayload(name));
      await c.readOptionReplies();
      const answers: number[][] = [];
      for (const [cookie, offset, flags] of [[1n, 0, 0], [2n, 64 * KiB, FLAG_REQ_ONE], [3n, 200 * KiB, 0]] as const) {
        c.sendRequest(CMD_BLOCK_STATUS, { cookie, offset: BigInt(offset), length: MiB, flags });
        const [chunk, ...rest] = await c.readChunks();
        expect(rest).toEqual([]);
        expect([chunk?.type, chunk?.flags, chunk?.cookie]).toEqual([CHUNK_BLOCK_STATUS, DONE, cookie]);
        const p = chunk!.payload;
        const runs: number[] = [];
        for (let at = 4; at < p.length; at += 8) runs.push(p.readUInt32BE(at), p.readUInt32BE(at + 4));
        answers.push(runs);
      }
      return answers;
    };
    // 128 KiB of data, then a hole (hole|zero = 3); REQ_ONE: one run; a range inside the hole.
    const expected = [[128 * KiB, 0, MiB - 128 * KiB, 3], [64 * KiB, 0], [MiB, 3]];
    expect(await statusOf('disk1')).toEqual(expected);
    expect([withNow.now, withNow.later]).toEqual([3, 0]);
    // Answered at once, each reply went straight to the socket (one chunk each).
    expect(server.stats().fileReplies.direct).toBe(3);
    expect(await statusOf('disk2')).toEqual(expected);
    expect([withoutNow.now, withoutNow.later]).toEqual([0, 3]);
    // The asynchronous path's replies go through the stream.
    expect(server.stats().fileReplies.direct).toBe(3);
  });

  it('answers plain READs and WRITEs through readToNow/writeNow, with the right bytes', async () => {
    const dev = new FastMemoryDevice({ name: 'disk1', capacity: 4 * MiB });
    const c = await serveAndConnect(dev);
    const data = Buffer.alloc(8192);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
    c.sendRequest(CMD.WRITE, { cookie: 1n, offset: 4096n, length: data.length, payload: data });
    expect(await c.readReply()).toMatchObject({ cookie: 1n, error: 0 });
    c.sendRequest(CMD.READ, { cookie: 2n, offset: 4096n, length: data.length });
    const reply = await c.readReply(data.length);
    expect(reply.error).toBe(0);
    expect(reply.data.equals(data)).toBe(true);
    expect(dev.data.subarray(4096, 4096 + data.length).equals(data)).toBe(true);
    expect(dev.wroteNow).toBe(1);
    expect(dev.readNow).toBe(1);
    // Neither went through the asynchronous path.
    expect(dev.log.filter((e) => e.op === 'write' || e.op === 'read')).toEqual([]);
  });

  it('a FUA write, or one writeNow refuses, is done by write()', async () => {
    const dev = new FastMemoryDevice({ name: 'disk1', capacity: 4 * MiB });
    const c = await serveAndConnect(dev);
    c.sendRequest(CMD.WRITE, { cookie: 1n, flags: FLAG_FUA, offset: 0n, length: 512, payload: Buffer.alloc(512, 1) });
    expect(await c.readReply()).toMatchObject({ cookie: 1n, error: 0 });
    dev.acceptNow = false;
    c.sendRequest(CMD.WRITE, { cookie: 2n, offset: 512n, length: 512, payload: Buffer.alloc(512, 2) });
    expect(await c.readReply()).toMatchObject({ cookie: 2n, error: 0 });
    expect(dev.wroteNow).toBe(0);
    expect(dev.log.map((e) => [e.op, e.offset, e.fua])).toEqual([
      ['write', 0, true],
      ['write', 512, false],
    ]);
    expect(dev.data[0]).toBe(1);
    expect(dev.data[512]).toBe(2);
  });
});

/** An 8 GiB device that keeps only what writeNow() was given (offsets above 4 GiB need no memory). */
class FarDevice implements BlockDevice {
  readonly name = 'far';
  readonly capacity = 8 * 1024 * MiB;
  readonly logicalBlockSize = 512;
  readonly physicalBlockSize = 4096;
  readonly readOnly = false;
  readonly wroteNow: { offset: number; data: Buffer }[] = [];
  writes = 0;

  writeNow(offset: number, data: readonly Buffer[]): boolean {
    this.wroteNow.push({ offset, data: Buffer.concat(data) });
    return true;
  }

  /** Each 4-byte word holds its own offset / 4 (low 32 bits): a read from the wrong place shows. */
  readToNow(offset: number, length: number, target: Buffer, targetOffset: number): boolean {
    for (let i = 0; i < length; i += 4) target.writeUInt32BE(((offset + i) / 4) >>> 0, targetOffset + i);
    return true;
  }

  read(_offset: number, length: number): Promise<Buffer> {
    return Promise.resolve(Buffer.alloc(length));
  }

  write(): Promise<void> {
    this.writes++;
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  discard(): Promise<void> {
    return Promise.resolve();
  }

  writeZeroes(): Promise<void> {
    return Promise.resolve();
  }
}

describe('NBD WRITEs answered in place', () => {
  it('pipelined WRITEs that arrive together are parsed and written where they lie: every payload at its offset (above 4 GiB too), every cookie answered, the request after them served', async () => {
    const dev = new FarDevice();
    const c = await serveAndConnect(dev);
    const frames: Buffer[] = [];
    const expected = new Map<number, Buffer>();
    for (let i = 0; i < 60; i++) {
      const length = 512 * (1 + ((i * 7) % 24)); // 512 B to 12 KiB
      const offset = (i % 2 === 0 ? 5 * 1024 * MiB : 0) + i * 64 * KiB + 512 * (i % 3);
      const payload = Buffer.alloc(length, (i * 31 + 1) & 0xff);
      payload.writeUInt32BE(i, 0);
      expected.set(offset, payload);
      frames.push(RawNbdClient.requestFrame(CMD.WRITE, { cookie: 0x1_0000_0000n * BigInt(i + 1) + BigInt(i), offset: BigInt(offset), length, payload }));
    }
    frames.push(RawNbdClient.requestFrame(CMD.FLUSH, { cookie: 999n }));
    c.socket.write(Buffer.concat(frames)); // one write: most requests reach the server in the same read
    const cookies = new Set<bigint>();
    for (let i = 0; i < 61; i++) {
      const reply = await c.readReply();
      expect(reply.error, `reply ${reply.cookie}`).toBe(0);
      cookies.add(reply.cookie);
    }
    expect([...cookies].sort((a, b) => (a < b ? -1 : 1))).toEqual([999n, ...Array.from({ length: 60 }, (_, i) => 0x1_0000_0000n * BigInt(i + 1) + BigInt(i))].sort((a, b) => (a < b ? -1 : 1)));
    expect(dev.writes).toBe(0);
    expect(dev.wroteNow.length).toBe(60);
    for (const w of dev.wroteNow) expect(w.data.equals(expected.get(w.offset) ?? Buffer.alloc(0)), `write at ${w.offset}`).toBe(true);
    // Most of them went in place (a request split between two reads takes the general path).
    expect(server!.stats().fileReplies.writesInPlace).toBeGreaterThan(30);
  });

  it('a WRITE in place that the device fails is answered with its error and cookie, and the connection goes on', async () => {
    const dev = new FastMemoryDevice({ name: 'disk1', capacity: 4 * MiB });
    const writeNow = dev.writeNow.bind(dev);
    dev.writeNow = (offset: number, data: readonly Buffer[]): boolean => {
      if (offset === 64 * KiB) throw new BlksnapError('ENOSPC', 'no space left');
      return writeNow(offset, data);
    };
    const c = await serveAndConnect(dev);
    // One at a time: each request arrives whole in one read, so each is answered in place.
    const replies = [];
    for (const [cookie, offset] of [
      [1n, 0],
      [2n, 64 * KiB],
      [3n, 128 * KiB],
    ] as const) {
      c.sendRequest(CMD.WRITE, { cookie, offset: BigInt(offset), length: 4096, payload: Buffer.alloc(4096, Number(cookie)) });
      replies.push(await c.readReply());
    }
    expect(replies.map((r) => [r.cookie, r.error])).toEqual([
      [1n, 0],
      [2n, 28], // NBD_ENOSPC
      [3n, 0],
    ]);
    expect(dev.data[0]).toBe(1);
    expect(dev.data[64 * KiB]).toBe(0);
    expect(dev.data[128 * KiB]).toBe(3);
    expect(server!.stats().fileReplies.writesInPlace).toBe(3);
  });
});

/** What FarDevice.readToNow gives for [offset, offset + length). */
function farBytes(offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i += 4) b.writeUInt32BE(((offset + i) / 4) >>> 0, i);
  return b;
}

describe('NBD READs answered in place', () => {
  const reads = Array.from({ length: 40 }, (_, i) => ({
    cookie: 0x1_0000_0000n * BigInt(i + 3) + BigInt(i),
    offset: (i % 2 === 1 ? 6 * 1024 * MiB : 0) + i * 256 * KiB + 512 * (i % 5),
    length: 512 * (1 + ((i * 5) % 16)), // 512 B to 8 KiB
  }));

  it('pipelined READs that arrive together: each answered in place with its cookie and the bytes at its offset (above 4 GiB too)', async () => {
    const dev = new FarDevice();
    const c = await serveAndConnect(dev);
    c.socket.write(Buffer.concat(reads.map((r) => RawNbdClient.requestFrame(CMD.READ, { cookie: r.cookie, offset: BigInt(r.offset), length: r.length }))));
    const byCookie = new Map(reads.map((r) => [r.cookie, r]));
    for (let i = 0; i < reads.length; i++) {
      const reply = await c.readReply((cookie) => byCookie.get(cookie)?.length ?? 0);
      const r = byCookie.get(reply.cookie);
      expect(r, `reply ${i}: cookie ${reply.cookie}`).toBeDefined();
      expect(reply.error).toBe(0);
      expect(reply.data.equals(farBytes(r!.offset, r!.length)), `READ at ${r!.offset}`).toBe(true);
      byCookie.delete(reply.cookie);
    }
    expect(server!.stats().fileReplies.readsInPlace).toBeGreaterThan(30);
  });

  it('with structured replies, each comes as one OFFSET_DATA chunk flagged DONE, at its offset', async () => {
    const dev = new FarDevice();
    const c = await serveAndConnect(dev, { structured: true });
    c.socket.write(Buffer.concat(reads.map((r) => RawNbdClient.requestFrame(CMD.READ, { cookie: r.cookie, offset: BigInt(r.offset), length: r.length }))));
    const byCookie = new Map(reads.map((r) => [r.cookie, r]));
    for (let i = 0; i < reads.length; i++) {
      const [chunk, ...more] = await c.readChunks();
      expect(more).toEqual([]);
      const r = byCookie.get(chunk!.cookie)!;
      expect([chunk!.type, chunk!.flags, Number(chunk!.payload.readBigUInt64BE(0))]).toEqual([CHUNK.OFFSET_DATA, DONE, r.offset]);
      expect(chunk!.payload.subarray(8).equals(farBytes(r.offset, r.length)), `READ at ${r.offset}`).toBe(true);
      byCookie.delete(chunk!.cookie);
    }
    expect(byCookie.size).toBe(0);
    expect(server!.stats().fileReplies.readsInPlace).toBeGreaterThan(30);
  });

  it('a READ the device cannot answer at once is read the usual way, with the right bytes', async () => {
    const dev = new FastMemoryDevice({ name: 'disk1', capacity: 4 * MiB });
    for (let i = 0; i < 64 * KiB; i++) dev.data[i] = (i * 11 + 5) & 0xff;
    dev.readToNow = (): boolean => false; // nothing cached, say
    const c = await serveAndConnect(dev);
    c.sendRequest(CMD.READ, { cookie: 7n, offset: 4096n, length: 8192 });
    const reply = await c.readReply(8192);
    expect([reply.cookie, reply.error]).toEqual([7n, 0]);
    expect(reply.data.equals(dev.data.subarray(4096, 4096 + 8192))).toBe(true);
    expect(dev.log.map((e) => [e.op, e.offset])).toEqual([['read', 4096]]);
    expect(server!.stats().fileReplies.readsInPlace).toBe(0);
  });
});

describe('NBD WRITE payloads kept while they wait', () => {
  it('a WRITE that waits for the device gets a payload of its own, not a view of the read slab it arrived in', async () => {
    const { dev, release } = heldFirstWrite({ capacity: 4 * MiB });
    dev.acceptNow = false; // every WRITE takes the asynchronous path
    const given: Uint8Array[] = [];
    const write = dev.write.bind(dev);
    dev.write = (offset: number, data: Uint8Array, options?: { fua?: boolean }): Promise<void> => {
      given.push(data);
      return write(offset, data, options);
    };
    const c = await serveAndConnect(dev);
    c.socket.write(
      Buffer.concat([
        RawNbdClient.requestFrame(CMD.WRITE, { cookie: 1n, offset: 0n, length: 4096, payload: Buffer.alloc(4096, 1) }),
        RawNbdClient.requestFrame(CMD.WRITE, { cookie: 2n, offset: 8192n, length: 4096, payload: Buffer.alloc(4096, 2) }),
      ]),
    );
    await untilInside(dev);
    release();
    expect((await c.readReply()).error).toBe(0);
    expect((await c.readReply()).error).toBe(0);
    expect(given.length).toBe(2);
    for (const data of given) expect(fromReadSlab(data as Buffer)).toBe(false);
    expect(dev.data[0]).toBe(1);
    expect(dev.data[8192]).toBe(2);
  });
});

describe('NBD ordering of overlapping requests on one connection', () => {
  it('a fast-path WRITE waits for an earlier overlapping WRITE still running (the later data wins)', async () => {
    const { dev, release } = heldFirstWrite();
    const c = await serveAndConnect(dev);
    c.sendRequest(CMD.WRITE, { cookie: 1n, flags: FLAG_FUA, offset: 0n, length: 4096, payload: Buffer.alloc(4096, 1) });
    await untilInside(dev);
    c.sendRequest(CMD.WRITE, { cookie: 2n, offset: 2048n, length: 4096, payload: Buffer.alloc(4096, 2) });
    await new Promise((r) => setTimeout(r, 50)); // time for the second to overtake, were it allowed to
    expect(dev.data[2048]).toBe(0); // nothing written yet: the first is held, the second waits
    release();
    expect((await c.readReply()).cookie).toBe(1n);
    expect((await c.readReply()).cookie).toBe(2n);
    expect(dev.data[0]).toBe(1);
    expect(dev.data.subarray(2048, 6144).every((b) => b === 2)).toBe(true);
  });

  it('two overlapping asynchronous WRITEs reach the device in arrival order', async () => {
    const { dev, release } = heldFirstWrite();
    const c = await serveAndConnect(dev);
    c.sendRequest(CMD.WRITE, { cookie: 1n, flags: FLAG_FUA, offset: 0n, length: 4096, payload: Buffer.alloc(4096, 1) });
    await untilInside(dev);
    c.sendRequest(CMD.WRITE, { cookie: 2n, flags: FLAG_FUA, offset: 0n, length: 4096, payload: Buffer.alloc(4096, 2) });
    await new Promise((r) => setTimeout(r, 50));
    expect(dev.log).toEqual([]); // the second did not complete ahead of the held first
    release();
    await c.readReply();
    await c.readReply();
    expect(dev.log.map((e) => e.op)).toEqual(['write', 'write']);
    expect(dev.data.subarray(0, 4096).every((b) => b === 2)).toBe(true);
  });

  it('a READ sent right after an overlapping WRITE returns the written data', async () => {
    const { dev, release } = heldFirstWrite();
    const c = await serveAndConnect(dev);
    c.sendRequest(CMD.WRITE, { cookie: 1n, flags: FLAG_FUA, offset: 0n, length: 4096, payload: Buffer.alloc(4096, 9) });
    await untilInside(dev);
    c.sendRequest(CMD.READ, { cookie: 2n, offset: 1024n, length: 1024 });
    await new Promise((r) => setTimeout(r, 50));
    release();
    const first = await c.readReply();
    expect(first.cookie).toBe(1n);
    const read = await c.readReply(1024);
    expect(read.cookie).toBe(2n);
    expect(read.data.every((b) => b === 9)).toBe(true);
  });

  it('a WRITE sent right after an overlapping READ does not change what that READ returns', async () => {
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let reads = 0;
    // No readToNow: the READ takes the asynchronous path and is held.
    const dev = new MemoryDevice({ name: 'disk1', capacity: 4 * MiB, gate: (op) => (op === 'read' && reads++ === 0 ? held : undefined) });
    dev.data.fill(5, 0, 4096);
    const c = await serveAndConnect(dev);
    c.sendRequest(CMD.READ, { cookie: 1n, offset: 0n, length: 4096 });
    await untilInside(dev);
    c.sendRequest(CMD.WRITE, { cookie: 2n, offset: 0n, length: 4096, payload: Buffer.alloc(4096, 6) });
    await new Promise((r) => setTimeout(r, 50));
    expect(dev.data[0]).toBe(5);
    release();
    const read = await c.readReply(4096);
    expect(read.cookie).toBe(1n);
    expect(read.data.every((b) => b === 5)).toBe(true);
    expect((await c.readReply()).cookie).toBe(2n);
    expect(dev.data[0]).toBe(6);
  });

  it('requests that do not overlap a held WRITE are answered at once', async () => {
    const { dev, release } = heldFirstWrite();
    dev.data.fill(4, 8192, 12288);
    const c = await serveAndConnect(dev);
    c.sendRequest(CMD.WRITE, { cookie: 1n, flags: FLAG_FUA, offset: 0n, length: 4096, payload: Buffer.alloc(4096, 1) });
    await untilInside(dev);
    c.sendRequest(CMD.READ, { cookie: 2n, offset: 8192n, length: 4096 });
    c.sendRequest(CMD.WRITE, { cookie: 3n, offset: 4096n, length: 4096, payload: Buffer.alloc(4096, 3) });
    const read = await c.readReply((cookie) => (cookie === 2n ? 4096 : 0));
    expect(read.cookie).toBe(2n);
    expect(read.data.every((b) => b === 4)).toBe(true);
    expect((await c.readReply()).cookie).toBe(3n);
    release();
    expect((await c.readReply()).cookie).toBe(1n);
  });

  it('FLUSH after fast-path writes: the writes are in the device and flush() ran before the reply', async () => {
    const dev = new FastMemoryDevice({ name: 'disk1', capacity: 4 * MiB });
    const c = await serveAndConnect(dev);
    for (let i = 0; i < 8; i++) {
      c.sendRequest(CMD.WRITE, { cookie: BigInt(i + 1), offset: BigInt(i * 4096), length: 4096, payload: Buffer.alloc(4096, i + 1) });
    }
    for (let i = 0; i < 8; i++) await c.readReply();
    c.sendRequest(CMD.FLUSH, { cookie: 100n });
    expect(await c.readReply()).toMatchObject({ cookie: 100n, error: 0 });
    expect(dev.flushes).toBe(1);
    expect(dev.wroteNow).toBe(8);
    for (let i = 0; i < 8; i++) expect(dev.data[i * 4096]).toBe(i + 1);
  });
  it('fast-path replies go straight to the socket; while the client reads nothing they fill it, one in part, and all arrive whole while more requests come in as they drain', async () => {
    const dev = new FastMemoryDevice({ name: 'disk1', capacity: 16 * MiB });
    for (let i = 0; i < dev.data.length; i++) dev.data[i] = (i * 13 + (i >> 12)) & 0xff;
    const expected = Buffer.from(dev.data);
    const c = await serveAndConnect(dev);
    // READs of 200 KiB (several MiB of replies, more than the socket holds) mixed
    // with 4 KiB WRITEs elsewhere, all answered on the fast path.
    const readLength = 200 * KiB;
    const lengths = new Map<bigint, number>();
    let next = 0;
    const sendWave = (n: number): void => {
      for (let k = 0; k < n; k++, next++) {
        const cookie = BigInt(2 * next + 1);
        c.sendRequest(CMD.READ, { cookie, offset: BigInt((next % 32) * 256 * KiB), length: readLength });
        lengths.set(cookie, readLength);
        const payload = Buffer.alloc(4096, (next % 250) + 1);
        c.sendRequest(CMD.WRITE, { cookie: cookie + 1n, offset: BigInt(8 * MiB + next * 4096), length: 4096, payload });
        lengths.set(cookie + 1n, 0);
        payload.copy(expected, 8 * MiB + next * 4096);
      }
    };
    c.socket.pause();
    sendWave(40);
    await new Promise((r) => setTimeout(r, 300));
    const whilePaused = server!.stats().fileReplies;
    c.socket.resume();
    // More requests while the queued replies drain: each reply read is followed
    // by a new request, whose reply must wait behind the queued ones.
    const seen = new Set<bigint>();
    for (let i = 0; i < lengths.size; i++) {
      if (next < 200) sendWave(1);
      const reply = await c.readReply((cookie) => lengths.get(cookie) ?? 0);
      expect(reply.magic, `reply ${i}`).toBe(0x67446698);
      expect(reply.error).toBe(0);
      const n = Number(reply.cookie);
      if (n % 2 === 1) {
        const offset = (((n - 1) / 2) % 32) * 256 * KiB;
        expect(reply.data.equals(expected.subarray(offset, offset + readLength)), `READ ${n}`).toBe(true);
      }
      seen.add(reply.cookie);
    }
    expect(seen.size).toBe(400);
    expect(dev.data.equals(expected)).toBe(true);
    expect(dev.readNow).toBe(200);
    expect(dev.wroteNow).toBe(200);
    // Replies went straight to the socket until it was full, one of them in part;
    // the rest waited in the stream.
    expect(whilePaused.direct).toBeGreaterThan(0);
    expect(whilePaused.directPartial).toBeGreaterThan(0);
    expect(whilePaused.direct).toBeLessThan(80);
  });
});
