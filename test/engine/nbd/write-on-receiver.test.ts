/**
 * A large WRITE whose payload the thread receiving it also writes into the
 * engine device's image file (socket-read-buffer.ts, Transmission.payloadWrite):
 * the data lands where it belongs, the change map records it, a snapshot taken
 * while a client stalls mid-payload neither waits for the client nor misses the
 * copy-on-write of that write, and a failed write is answered as an error.
 */
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FileWriteTarget } from '../../../engine/core/block-device.js';
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
const WRITE = 1;
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

async function serve(source: ExportSource): Promise<NbdServer> {
  server = new NbdServer({ exports: source, unixSocket: join(dir, 'nbd.sock'), receiveThreads: 2 });
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
    c.socket.write(frame.subarray(0, 28 + 300 * KiB));
    // The thread receives the rest, the write counted as running (the gate entered for it).
    const deadline = Date.now() + 5000;
    while (dev.gate.inFlight === 0 && Date.now() < deadline) await pause(5);
    expect(dev.gate.inFlight).toBe(1);
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
    c.socket.write(frame.subarray(0, 28 + 500 * KiB));
    const deadline = Date.now() + 5000;
    while (dev.gate.inFlight === 0 && Date.now() < deadline) await pause(5);
    expect(dev.gate.inFlight).toBe(1);
    c.socket.destroy();
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
        return { fd, position: offset, end: (written) => void ended.push(written) };
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
