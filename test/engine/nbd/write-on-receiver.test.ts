/**
 * A large WRITE whose payload the thread receiving it also writes into the
 * engine device's image file (socket-read-buffer.ts, Transmission.payloadWrite):
 * the data lands where it belongs, the change map records it, a snapshot taken
 * while a client stalls mid-payload neither waits for the client nor misses the
 * copy-on-write of that write, and a failed write is answered as an error.
 *
 * And such a thread going on as a stream (socket-receivers.ts): it serves the
 * plain WRITEs that follow itself (each answered once, in the file, marked in
 * the CBT with the number of its time), gives the connection back at any other
 * request, which is served in order, gives way to a snapshot take between two
 * writes or while its client stalls mid-payload (that write is then copied on
 * write first), and leaves nothing running after a hang-up or a server close.
 */
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FileWriteStream, FileWriteTarget } from '../../../engine/core/block-device.js';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import type { EngineDevice } from '../../../engine/core/engine-device.js';
import { engineExports } from '../../../engine/nbd/engine-exports.js';
import { staticExports } from '../../../engine/nbd/export-source.js';
import type { ExportSource } from '../../../engine/nbd/export-source.js';
import { NbdServer } from '../../../engine/nbd/server.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { RawNbdClient } from '../../helpers/nbd-raw-client.js';

// Protocol values, written out here independently of engine/nbd/constants.ts.
const READ = 0;
const WRITE = 1;
const FLUSH = 3;
const FLAG_FUA = 1;
const EIO = 5;
const MiB = 1024 * 1024;
const KiB = 1024;
const IMAGE = 16 * MiB;

let dir: string;
let server: NbdServer | null;
let engine: EmbeddedEngine | null;
let clients: RawNbdClient[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-write-on-receiver-'));
  server = null;
  engine = null;
  clients = [];
});

afterEach(async () => {
  for (const c of clients) c.close();
  await server?.close();
  await engine?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Bytes that differ at every 4-byte position and from seed to seed (a misplaced piece shows). */
function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i + 4 <= length; i += 4) b.writeUInt32LE((Math.imul(i + seed * 7919, 2654435761) + seed) >>> 0, i);
  return b;
}

async function serve(source: ExportSource, streamIdleMs?: number): Promise<NbdServer> {
  // With a stream's idle time: a stream begins for sure after a lone WRITE (its thread waits for the go).
  const streams = streamIdleMs === undefined ? {} : { streamIdleMs, streamGoWaitMs: 1000 };
  server = new NbdServer({ exports: source, unixSocket: join(dir, 'nbd.sock'), receiveThreads: 2, ...streams });
  await server.start();
  await server.startReceivers();
  return server;
}

async function connect(name: string): Promise<RawNbdClient> {
  const c = await RawNbdClient.connect(join(dir, 'nbd.sock'));
  clients.push(c);
  await c.goTo(name);
  return c;
}

/** An engine serving one image of IMAGE bytes of 0x11, tracked (CBT) by a snapshot not yet taken. */
async function trackedEngineDevice(): Promise<{ image: string; dev: EngineDevice; snapshot: string; e: EmbeddedEngine }> {
  const image = join(dir, 'disk.img');
  writeFileSync(image, Buffer.alloc(IMAGE, 0x11));
  const e = createEmbeddedEngine();
  engine = e;
  await e.addDevice({ path: image, name: 'disk1' });
  const snapshot = await e.snapshotCreate({ diffStoragePath: join(dir, 'diff'), limitSectors: (IMAGE * 2) / 512 });
  await e.snapshotAdd(snapshot, 'disk1');
  return { image, dev: e.device('disk1') as EngineDevice, snapshot, e };
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends a WRITE's header and `bytes` of its payload, and waits until the device counts the write as running (a thread holds it). */
async function sendPartOf(c: RawNbdClient, frame: Buffer, bytes: number, dev: EngineDevice): Promise<void> {
  c.socket.write(frame.subarray(0, 28 + bytes));
  const deadline = Date.now() + 5000;
  while (dev.gate.inFlight === 0 && Date.now() < deadline) await pause(5);
  expect(dev.gate.inFlight).toBe(1);
}

describe('NBD WRITE payloads written by the receiving thread', () => {
  it('pipelined 1 MiB writes land in the image file, written by the receive threads, and the CBT marks exactly their blocks', async () => {
    const { image, e } = await trackedEngineDevice();
    const s = await serve(engineExports(e));
    const c = await connect('disk1');
    const offsets = [2, 3, 4, 9, 10, 13].map((m) => m * MiB);
    const sent = offsets.map((_, i) => pattern(MiB, i + 1));
    for (const [i, offset] of offsets.entries()) c.sendRequest(WRITE, { cookie: BigInt(i), offset: BigInt(offset), length: MiB, payload: sent[i] });
    for (let i = 0; i < offsets.length; i++) expect((await c.readReply()).error).toBe(0);
    const content = readFileSync(image);
    for (const [i, offset] of offsets.entries()) expect(content.subarray(offset, offset + MiB).equals(sent[i]!), `MiB at ${offset / MiB}`).toBe(true);
    expect(content.subarray(0, 2 * MiB).every((b) => b === 0x11)).toBe(true);
    expect(content.subarray(5 * MiB, 9 * MiB).every((b) => b === 0x11)).toBe(true);
    // Most went this way (the first few may come before the threads take them), or on in a stream after one.
    const { writes, streamedWrites } = s.stats().receivers;
    expect(writes + streamedWrites).toBeGreaterThanOrEqual(offsets.length - 2);
    const info = await e.cbtInfo('disk1');
    const map = await e.cbtMapActive('disk1', 0, info.blockCount);
    const blockBytes = IMAGE / info.blockCount;
    const marked = [...map].map((n, block) => (n !== 0 ? block : -1)).filter((block) => block >= 0);
    const expected = offsets.flatMap((offset) => Array.from({ length: MiB / blockBytes }, (_, k) => offset / blockBytes + k));
    expect(marked).toEqual(expected);
  });

  it('a snapshot taken while the client stalls mid-payload does not wait for it, and the image keeps the data from before the write', async () => {
    const { image, dev, snapshot, e } = await trackedEngineDevice();
    await serve(engineExports(e));
    const c = await connect('disk1');
    const payload = pattern(MiB, 42);
    const frame = RawNbdClient.requestFrame(WRITE, { cookie: 7n, offset: BigInt(4 * MiB), length: MiB, payload });
    // The thread receives the rest, the write counted as running (the gate entered for it).
    await sendPartOf(c, frame, 300 * KiB, dev);
    // The take freezes the gate: the receive gives way, so the take ends with the payload still unsent.
    await e.snapshotTake(snapshot);
    expect(dev.gate.inFlight).toBe(0);
    c.socket.write(frame.subarray(28 + 300 * KiB));
    const reply = await c.readReply();
    expect(reply.error).toBe(0);
    expect(reply.cookie).toBe(7n);
    expect(readFileSync(image).subarray(4 * MiB, 5 * MiB).equals(payload)).toBe(true);
    // Written after the take, the usual way: copied on write first, so the image has what was there before.
    const imageName = (await e.snapshotInfo('disk1')).image;
    expect((await e.image(imageName).read(4 * MiB, MiB)).every((b) => b === 0x11)).toBe(true);
  });

  it('a client that hangs up mid-payload leaves nothing running: the device freezes, and the file is untouched', async () => {
    const { image, dev, e } = await trackedEngineDevice();
    await serve(engineExports(e));
    const c = await connect('disk1');
    const frame = RawNbdClient.requestFrame(WRITE, { offset: BigInt(6 * MiB), length: MiB, payload: pattern(MiB, 3) });
    await sendPartOf(c, frame, 500 * KiB, dev);
    c.socket.destroy();
    const deadline = Date.now() + 5000;
    while (dev.gate.inFlight !== 0 && Date.now() < deadline) await pause(5);
    expect(dev.gate.inFlight).toBe(0);
    await dev.gate.freeze();
    dev.gate.unfreeze();
    expect(readFileSync(image).subarray(6 * MiB, 7 * MiB).every((b) => b === 0x11)).toBe(true);
  });

  it('a WRITE with FUA goes the usual way', async () => {
    const { image, e } = await trackedEngineDevice();
    const s = await serve(engineExports(e));
    const c = await connect('disk1');
    const payload = pattern(MiB, 5);
    c.sendRequest(WRITE, { flags: FLAG_FUA, offset: BigInt(MiB), length: MiB, payload });
    expect((await c.readReply()).error).toBe(0);
    expect(readFileSync(image).subarray(MiB, 2 * MiB).equals(payload)).toBe(true);
    expect(s.stats().receivers.writes).toBe(0);
    expect(s.stats().receivers.receives).toBeGreaterThan(0);
  });

  it('answers a write that fails with EIO, ends the device\'s write, and goes on serving', async () => {
    const readOnlyFile = join(dir, 'ro.img');
    writeFileSync(readOnlyFile, Buffer.alloc(4 * MiB));
    const fd = openSync(readOnlyFile, 'r'); // pwrite fails: EBADF
    const ended: boolean[] = [];
    class ReadOnlyFileTarget extends MemoryDevice {
      fileWriteTarget(offset: number): FileWriteTarget {
        return { fd, position: offset, streamable: false, end: (written) => void ended.push(written) };
      }
    }
    const dev = new ReadOnlyFileTarget({ name: 'disk1', capacity: 4 * MiB });
    try {
      await serve(staticExports([dev]));
      const c = await connect('disk1');
      c.sendRequest(WRITE, { cookie: 1n, offset: 0n, length: MiB, payload: pattern(MiB, 1) });
      expect((await c.readReply()).error).toBe(EIO);
      expect(ended).toEqual([true]); // a failed write may have written part: ended as written
      // Small writes take the device's usual path.
      c.sendRequest(WRITE, { cookie: 2n, offset: 0n, length: 4096, payload: pattern(4096, 2) });
      expect((await c.readReply()).error).toBe(0);
      expect(dev.data.subarray(0, 4096).equals(pattern(4096, 2))).toBe(true);
    } finally {
      await server?.close();
      server = null;
      closeSync(fd);
    }
  });
});

/** The change numbers of the blocks of [offset, offset+length) in the device's active CBT table. */
async function numbersOf(e: EmbeddedEngine, offset: number, length: number): Promise<number[]> {
  const info = await e.cbtInfo('disk1');
  const blockBytes = IMAGE / info.blockCount;
  return [...(await e.cbtMapActive('disk1', offset / blockBytes, length / blockBytes))];
}

/** Sends a 1 MiB WRITE of pattern(seed) at `offset` and waits for its reply (which must be a success). */
async function writeMiB(c: RawNbdClient, cookie: bigint, offset: number, seed: number): Promise<Buffer> {
  const payload = pattern(MiB, seed);
  c.sendRequest(WRITE, { cookie, offset: BigInt(offset), length: MiB, payload });
  const reply = await c.readReply();
  expect(reply.cookie).toBe(cookie);
  expect(reply.error).toBe(0);
  return payload;
}

/**
 * Writes 1 MiB at `offset` until the server's receive thread goes on as a
 * stream after one (it does unless the event loop is too slow to say go).
 */
async function startStream(c: RawNbdClient, s: NbdServer, offset: number, seed: number): Promise<Buffer> {
  const before = s.stats().receivers.streams;
  for (let i = 0; i < 40; i++) {
    const payload = await writeMiB(c, 1000n + BigInt(i), offset, seed);
    const { streams, busy } = s.stats().receivers;
    if (streams > before && busy === 1) return payload;
  }
  throw new Error('no stream began');
}

describe('a receive thread that goes on as a stream', () => {
  it('answers the WRITE it began with under its own cookie, whose halves may have their top bits set (as qemu\'s do)', async () => {
    const { image, e } = await trackedEngineDevice();
    const s = await serve(engineExports(e), 5000);
    const c = await connect('disk1');
    const cookie = 0xfedcba9887654321n;
    const payload = pattern(MiB, 1);
    c.sendRequest(WRITE, { cookie, offset: BigInt(2 * MiB), length: MiB, payload });
    const reply = await c.readReply();
    expect(reply.cookie).toBe(cookie);
    expect(reply.error).toBe(0);
    expect(s.stats().receivers.streams).toBe(1); // answered by the thread that went on
    expect((await writeMiB(c, 2n, 3 * MiB, 2)).equals(readFileSync(image).subarray(3 * MiB, 4 * MiB))).toBe(true);
    expect(readFileSync(image).subarray(2 * MiB, 3 * MiB).equals(payload)).toBe(true);
  });

  it('serves the plain WRITEs that follow: each answered once, in the file, and marked in the CBT', async () => {
    const { image, e } = await trackedEngineDevice();
    const s = await serve(engineExports(e), 5000);
    const c = await connect('disk1');
    const first = await startStream(c, s, 0, 1);
    const streamed = s.stats().receivers.streamedWrites;
    const offsets = [1, 2, 5, 6, 7, 12].map((m) => m * MiB);
    const sent = offsets.map((_, i) => pattern(MiB, i + 2));
    c.socket.write(Buffer.concat(offsets.map((offset, i) => RawNbdClient.requestFrame(WRITE, { cookie: BigInt(i), offset: BigInt(offset), length: MiB, payload: sent[i] }))));
    const cookies: bigint[] = [];
    for (let i = 0; i < offsets.length; i++) {
      const reply = await c.readReply();
      expect(reply.error).toBe(0);
      cookies.push(reply.cookie);
    }
    expect(cookies.sort((a, b) => Number(a - b))).toEqual(offsets.map((_, i) => BigInt(i)));
    // All six by the stream's thread.
    expect(s.stats().receivers.streamedWrites - streamed).toBe(offsets.length);
    const content = readFileSync(image);
    expect(content.subarray(0, MiB).equals(first)).toBe(true);
    for (const [i, offset] of offsets.entries()) expect(content.subarray(offset, offset + MiB).equals(sent[i]!), `MiB at ${offset / MiB}`).toBe(true);
    expect(content.subarray(3 * MiB, 5 * MiB).every((b) => b === 0x11)).toBe(true);
    expect(content.subarray(8 * MiB, 12 * MiB).every((b) => b === 0x11)).toBe(true);
    const numbers = await numbersOf(e, 0, IMAGE);
    const written = new Set([0, ...offsets].map((offset) => offset / MiB));
    const perMiB = numbers.length / (IMAGE / MiB);
    numbers.forEach((n, block) => expect(n, `block ${block}`).toBe(written.has(Math.floor(block / perMiB)) ? 1 : 0));
  });

  it('gives the connection back at a READ: it, a FLUSH and a FUA WRITE are served after the WRITEs before them', async () => {
    const { image, e } = await trackedEngineDevice();
    const s = await serve(engineExports(e), 5000);
    const c = await connect('disk1');
    await startStream(c, s, 0, 1);
    const a = pattern(MiB, 2);
    const b = pattern(MiB, 3);
    const d = pattern(MiB, 4);
    c.socket.write(
      Buffer.concat([
        RawNbdClient.requestFrame(WRITE, { cookie: 1n, offset: BigInt(2 * MiB), length: MiB, payload: a }),
        RawNbdClient.requestFrame(READ, { cookie: 2n, offset: BigInt(2 * MiB), length: MiB }),
        RawNbdClient.requestFrame(FLUSH, { cookie: 3n }),
        RawNbdClient.requestFrame(WRITE, { cookie: 4n, flags: FLAG_FUA, offset: BigInt(3 * MiB), length: MiB, payload: b }),
        RawNbdClient.requestFrame(WRITE, { cookie: 5n, offset: BigInt(4 * MiB), length: MiB, payload: d }),
      ]),
    );
    const replies = new Map<bigint, { error: number; data: Buffer }>();
    for (let i = 0; i < 5; i++) {
      const reply = await c.readReply((cookie) => (cookie === 2n ? MiB : 0));
      replies.set(reply.cookie, reply);
    }
    expect([...replies.keys()].sort()).toEqual([1n, 2n, 3n, 4n, 5n]);
    for (const reply of replies.values()) expect(reply.error).toBe(0);
    expect(replies.get(2n)!.data.equals(a)).toBe(true);
    const content = readFileSync(image);
    expect(content.subarray(2 * MiB, 3 * MiB).equals(a)).toBe(true);
    expect(content.subarray(3 * MiB, 4 * MiB).equals(b)).toBe(true);
    expect(content.subarray(4 * MiB, 5 * MiB).equals(d)).toBe(true);
    expect(s.stats().receivers.streamedWrites).toBeGreaterThanOrEqual(1);
  });

  it('gives way to a snapshot take between two writes: those before keep their number, those after are copied on write', async () => {
    const { image, dev, snapshot, e } = await trackedEngineDevice();
    const s = await serve(engineExports(e), 5000);
    const c = await connect('disk1');
    await startStream(c, s, 0, 1);
    const streamedBefore = s.stats().receivers.streamedWrites;
    const before1 = await writeMiB(c, 1n, MiB, 2);
    const before5 = await writeMiB(c, 2n, 5 * MiB, 3);
    expect(s.stats().receivers.streamedWrites - streamedBefore).toBe(2);
    // The stream waits for the next request: the take does not wait for it.
    await e.snapshotTake(snapshot);
    expect(dev.gate.inFlight).toBe(0);
    const after1 = await writeMiB(c, 3n, MiB, 4);
    const after2 = await writeMiB(c, 4n, 2 * MiB, 5);
    const content = readFileSync(image);
    expect(content.subarray(MiB, 2 * MiB).equals(after1)).toBe(true);
    expect(content.subarray(2 * MiB, 3 * MiB).equals(after2)).toBe(true);
    expect(content.subarray(5 * MiB, 6 * MiB).equals(before5)).toBe(true);
    const snap = e.image((await e.snapshotInfo('disk1')).image);
    expect((await snap.read(MiB, MiB)).equals(before1)).toBe(true);
    expect((await snap.read(2 * MiB, MiB)).every((x) => x === 0x11)).toBe(true);
    expect((await snap.read(5 * MiB, MiB)).equals(before5)).toBe(true);
    // Marked by the stream before the take (1), by the connection after it (2).
    expect(new Set(await numbersOf(e, 5 * MiB, MiB))).toEqual(new Set([1]));
    expect(new Set(await numbersOf(e, MiB, 2 * MiB))).toEqual(new Set([2]));
  });

  it('gives way to a snapshot take while its client stalls mid-payload: that WRITE is copied on write first', async () => {
    const { image, dev, snapshot, e } = await trackedEngineDevice();
    const s = await serve(engineExports(e), 5000);
    const c = await connect('disk1');
    await startStream(c, s, 0, 1);
    const payload = pattern(MiB, 6);
    const frame = RawNbdClient.requestFrame(WRITE, { cookie: 9n, offset: BigInt(4 * MiB), length: MiB, payload });
    c.socket.write(frame.subarray(0, 28 + 300 * KiB));
    await pause(50);
    expect(s.stats().receivers.busy).toBe(1);
    await e.snapshotTake(snapshot);
    expect(dev.gate.inFlight).toBe(0);
    c.socket.write(frame.subarray(28 + 300 * KiB));
    const reply = await c.readReply();
    expect(reply.cookie).toBe(9n);
    expect(reply.error).toBe(0);
    expect(readFileSync(image).subarray(4 * MiB, 5 * MiB).equals(payload)).toBe(true);
    const snap = e.image((await e.snapshotInfo('disk1')).image);
    expect((await snap.read(4 * MiB, MiB)).every((x) => x === 0x11)).toBe(true);
  });

  it('leaves nothing running after its client hangs up mid-payload, and writes none of that payload', async () => {
    const { image, dev, e } = await trackedEngineDevice();
    const s = await serve(engineExports(e), 5000);
    const c = await connect('disk1');
    await startStream(c, s, 0, 1);
    const frame = RawNbdClient.requestFrame(WRITE, { cookie: 9n, offset: BigInt(6 * MiB), length: MiB, payload: pattern(MiB, 7) });
    c.socket.write(frame.subarray(0, 28 + 200 * KiB));
    await pause(30);
    c.socket.destroy();
    const deadline = Date.now() + 5000;
    while ((dev.gate.inFlight !== 0 || s.stats().receivers.busy !== 0) && Date.now() < deadline) await pause(5);
    expect(dev.gate.inFlight).toBe(0);
    expect(s.stats().receivers.busy).toBe(0);
    await dev.gate.freeze();
    dev.gate.unfreeze();
    expect(readFileSync(image).subarray(6 * MiB, 7 * MiB).every((b) => b === 0x11)).toBe(true);
  });

  it('gives an idle client back to the event loop, which serves what it sends later', async () => {
    const { e } = await trackedEngineDevice();
    const s = await serve(engineExports(e), 30);
    const c = await connect('disk1');
    const written = await startStream(c, s, 0, 1);
    const deadline = Date.now() + 5000;
    while (s.stats().receivers.busy !== 0 && Date.now() < deadline) await pause(5);
    expect(s.stats().receivers.busy).toBe(0);
    c.sendRequest(READ, { cookie: 3n, offset: 0n, length: MiB });
    const reply = await c.readReply(MiB);
    expect(reply.error).toBe(0);
    expect(reply.data.equals(written)).toBe(true);
  });

  it('ends when the server closes, with nothing left running', async () => {
    const { dev, e } = await trackedEngineDevice();
    const s = await serve(engineExports(e), 5000);
    const c = await connect('disk1');
    await startStream(c, s, 0, 1);
    await s.close();
    server = null;
    await c.closed;
    expect(dev.gate.inFlight).toBe(0);
  });

  it('answers a streamed write that fails with its error, and goes on', async () => {
    const good = join(dir, 'good.img');
    const bad = join(dir, 'bad.img');
    writeFileSync(good, Buffer.alloc(4 * MiB));
    writeFileSync(bad, Buffer.alloc(4 * MiB));
    const goodFd = openSync(good, 'r+');
    const badFd = openSync(bad, 'r'); // pwrite fails: EBADF, answered as EIO
    let streamsEnded = 0;
    class SplitFiles extends MemoryDevice {
      fileWriteTarget(offset: number): FileWriteTarget {
        return { fd: goodFd, position: offset, streamable: true, end: () => undefined };
      }
      fileWriteStream(): FileWriteStream {
        return { fd: badFd, base: 0, size: 4 * MiB, marks: null, cow: null, end: () => void streamsEnded++ };
      }
    }
    const dev = new SplitFiles({ name: 'disk1', capacity: 4 * MiB });
    try {
      const s = await serve(staticExports([dev]), 5000);
      const c = await connect('disk1');
      await startStream(c, s, 0, 1);
      c.sendRequest(WRITE, { cookie: 1n, offset: BigInt(MiB), length: MiB, payload: pattern(MiB, 2) });
      expect((await c.readReply()).error).toBe(EIO);
      c.sendRequest(WRITE, { cookie: 2n, offset: BigInt(2 * MiB), length: MiB, payload: pattern(MiB, 3) });
      expect((await c.readReply()).error).toBe(EIO);
      expect(s.stats().receivers.busy).toBe(1);
      expect(streamsEnded).toBe(0);
      c.close();
      const deadline = Date.now() + 5000;
      while (streamsEnded === 0 && Date.now() < deadline) await pause(5);
      expect(streamsEnded).toBe(1);
    } finally {
      await server?.close();
      server = null;
      closeSync(goodFd);
      closeSync(badFd);
    }
  });
});

describe('copy-on-write on the receiving thread', () => {
  it('a first write after a take is copied and written by the thread: the image keeps the old data, the device gets the new', async () => {
    const { image, snapshot, e } = await trackedEngineDevice();
    await e.snapshotTake(snapshot);
    const s = await serve(engineExports(e));
    const c = await connect('disk1');
    const offsets = [2, 3, 4, 8].map((m) => m * MiB);
    const sent = offsets.map((_, i) => pattern(MiB, i + 20));
    const before = s.stats().receivers.writes;
    c.socket.write(Buffer.concat(offsets.map((offset, i) => RawNbdClient.requestFrame(WRITE, { cookie: BigInt(i), offset: BigInt(offset), length: MiB, payload: sent[i] }))));
    for (let i = 0; i < offsets.length; i++) expect((await c.readReply()).error).toBe(0);
    // By the threads (the first may come before they take it): written ahead, or served by a stream.
    const r = s.stats().receivers;
    expect(r.writes + r.streamedWrites - before).toBeGreaterThanOrEqual(offsets.length - 1);
    const content = readFileSync(image);
    for (const [i, offset] of offsets.entries()) expect(content.subarray(offset, offset + MiB).equals(sent[i]!)).toBe(true);
    const snap = e.image((await e.snapshotInfo('disk1')).image);
    expect((await snap.read(0, IMAGE)).every((b) => b === 0x11)).toBe(true);
    // Copied once: a second write of the same MiB changes the device only.
    c.sendRequest(WRITE, { cookie: 9n, offset: BigInt(2 * MiB), length: MiB, payload: pattern(MiB, 30) });
    expect((await c.readReply()).error).toBe(0);
    expect((await snap.read(2 * MiB, MiB)).every((b) => b === 0x11)).toBe(true);
    expect(readFileSync(image).subarray(2 * MiB, 3 * MiB).equals(pattern(MiB, 30))).toBe(true);
  });

  it('a reader of the image does not wait for a client that stalls mid-payload of such a write', async () => {
    const { image, dev, snapshot, e } = await trackedEngineDevice();
    await e.snapshotTake(snapshot);
    await serve(engineExports(e));
    const c = await connect('disk1');
    const payload = pattern(MiB, 40);
    const frame = RawNbdClient.requestFrame(WRITE, { cookie: 5n, offset: BigInt(4 * MiB), length: MiB, payload });
    await sendPartOf(c, frame, 300 * KiB, dev); // the thread holds the write, and its chunks
    const snap = e.image((await e.snapshotInfo('disk1')).image);
    // The read asks the write to give way (it has not begun copying): it ends without the rest of the payload.
    expect((await snap.read(4 * MiB + 4096, 4096)).every((b) => b === 0x11)).toBe(true);
    c.socket.write(frame.subarray(28 + 300 * KiB));
    const reply = await c.readReply();
    expect(reply.cookie).toBe(5n);
    expect(reply.error).toBe(0);
    expect(readFileSync(image).subarray(4 * MiB, 5 * MiB).equals(payload)).toBe(true);
    expect((await snap.read(4 * MiB, MiB)).every((b) => b === 0x11)).toBe(true);
  });
});

describe('a stream while a snapshot is taken: it copies on write on its thread', () => {
  it('serves WRITEs whose chunks need copy-on-write: the image keeps every old byte, the device gets the new, the CBT marks them; a NEW chunk before its window gives the connection back', async () => {
    const { image, snapshot, e } = await trackedEngineDevice();
    await e.snapshotTake(snapshot);
    const s = await serve(engineExports(e), 120_000);
    const c = await connect('disk1');
    const first = await startStream(c, s, 8 * MiB, 1); // its window: from 9 MiB on
    const streamed = s.stats().receivers.streamedWrites;
    // 9 and 10 MiB, one that starts and ends inside chunks, 10 MiB again (copied already), 3 MiB (outside the window), 14 MiB.
    const writes: [number, number][] = [
      [9 * MiB, 2],
      [10 * MiB, 3],
      [12 * MiB + 128 * KiB, 4],
      [10 * MiB, 5],
      [3 * MiB, 6],
      [14 * MiB, 7],
    ];
    const sent = writes.map(([, seed]) => pattern(MiB, seed));
    c.socket.write(Buffer.concat(writes.map(([offset], i) => RawNbdClient.requestFrame(WRITE, { cookie: BigInt(i), offset: BigInt(offset), length: MiB, payload: sent[i] }))));
    const cookies: bigint[] = [];
    for (let i = 0; i < writes.length; i++) {
      const reply = await c.readReply();
      expect(reply.error).toBe(0);
      cookies.push(reply.cookie);
    }
    expect(cookies.sort()).toEqual(writes.map((_, i) => BigInt(i)));
    // The first four by the stream; 3 MiB given back and written by the connection.
    expect(s.stats().receivers.streamedWrites - streamed).toBe(4);
    const content = readFileSync(image);
    expect(content.subarray(8 * MiB, 9 * MiB).equals(first)).toBe(true);
    for (const i of [0, 2, 3, 4, 5]) expect(content.subarray(writes[i]![0], writes[i]![0] + MiB).equals(sent[i]!), `write ${i}`).toBe(true);
    const snap = e.image((await e.snapshotInfo('disk1')).image);
    expect((await snap.read(0, IMAGE)).every((b) => b === 0x11)).toBe(true);
    const taken = await numbersOf(e, 8 * MiB, MiB);
    expect(taken[0]).toBeGreaterThan(0);
    for (const [offset] of writes) expect(new Set(await numbersOf(e, offset, MiB))).toEqual(new Set([taken[0]]));
    expect(new Set(await numbersOf(e, 0, 3 * MiB))).toEqual(new Set([0]));
  });

  it('a reader of the image asks it to give way: it reads the old data of chunks the stream copied and of chunks it holds and did not reach', async () => {
    const { image, snapshot, e } = await trackedEngineDevice();
    await e.snapshotTake(snapshot);
    const s = await serve(engineExports(e), 120_000);
    const c = await connect('disk1');
    await startStream(c, s, 8 * MiB, 1);
    const streamed = s.stats().receivers.streamedWrites;
    await writeMiB(c, 1n, 9 * MiB, 2);
    expect(s.stats().receivers.streamedWrites - streamed).toBe(1);
    // Without the stream's giving way, these would wait for its idle client (two minutes).
    const snap = e.image((await e.snapshotInfo('disk1')).image);
    expect((await snap.read(9 * MiB, MiB)).every((b) => b === 0x11)).toBe(true);
    expect((await snap.read(11 * MiB, MiB)).every((b) => b === 0x11)).toBe(true);
    const deadline = Date.now() + 5000;
    while (s.stats().receivers.busy !== 0 && Date.now() < deadline) await pause(5);
    expect(s.stats().receivers.busy).toBe(0); // given back
    const at11 = await writeMiB(c, 2n, 11 * MiB, 3);
    const at9 = await writeMiB(c, 3n, 9 * MiB, 4);
    expect((await snap.read(0, IMAGE)).every((b) => b === 0x11)).toBe(true);
    const content = readFileSync(image);
    expect(content.subarray(9 * MiB, 10 * MiB).equals(at9)).toBe(true);
    expect(content.subarray(11 * MiB, 12 * MiB).equals(at11)).toBe(true);
  });

  it('gives way to the snapshot\'s destruction: the chunks are given back, and the writes after it are plain', async () => {
    const { image, dev, snapshot, e } = await trackedEngineDevice();
    await e.snapshotTake(snapshot);
    const s = await serve(engineExports(e), 120_000);
    const c = await connect('disk1');
    await startStream(c, s, 8 * MiB, 1);
    await writeMiB(c, 1n, 9 * MiB, 2);
    await e.snapshotDestroy(snapshot);
    expect(dev.gate.inFlight).toBe(0);
    const at10 = await writeMiB(c, 2n, 10 * MiB, 3);
    expect(readFileSync(image).subarray(10 * MiB, 11 * MiB).equals(at10)).toBe(true);
    expect(dev.tracker?.diffArea ?? null).toBeNull();
  });
});
