/**
 * READ replies sent from the page cache by reference (engine/nbd/file-reply.ts):
 * large READs of an engine device's live, cached bytes go by sendfile(2); what the
 * socket does not take at once follows in the same frame order; ranges not
 * cached, small READs, holes and snapshot images are copied as before.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import { sendFileAvailable } from '../../../engine/core/send-file.js';
import { FileBlockDevice } from '../../../engine/core/file-block-device.js';
import { staticExports } from '../../../engine/nbd/export-source.js';
import { engineExports } from '../../../engine/nbd/engine-exports.js';
import { NbdServer } from '../../../engine/nbd/server.js';
import type { ServerLimits } from '../../../engine/nbd/server.js';
import type { FileReplyCounts } from '../../../engine/nbd/file-reply.js';
import { hasCommand } from '../../helpers/env.js';
import { RawNbdClient } from '../../helpers/nbd-raw-client.js';
import { dropFromPageCache } from '../../helpers/page-cache.js';

const run = promisify(execFile);
// Protocol values, written out independently of engine/nbd/constants.ts.
const CMD_READ = 0;
const CMD_WRITE = 1;
const OPT_STRUCTURED_REPLY = 8;
const CHUNK_OFFSET_DATA = 1;
const CHUNK_OFFSET_HOLE = 2;
const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 32 * MiB;

let dir: string;
let engine: EmbeddedEngine;
let server: NbdServer;
let clients: RawNbdClient[];
let content: Buffer;
let imagePath: string;

async function start(limits: Partial<ServerLimits> = {}): Promise<void> {
  server = new NbdServer({ exports: engineExports(engine), unixSocket: join(dir, 'nbd.sock'), limits });
  await server.start();
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-file-reply-test-'));
  clients = [];
  engine = createEmbeddedEngine({ params: { chunkMinimumShift: 16, chunkMaximumShift: 16, diffStorageMinimum: 16384 } });
  imagePath = join(dir, 'disk1.img');
  content = randomBytes(SIZE);
  await writeFile(imagePath, content);
  await writeFile(join(dir, 'raw.img'), content);
  await engine.addDevice({ path: imagePath, name: 'disk1' });
});

afterEach(async () => {
  for (const c of clients) c.close();
  await server.close();
  await engine.close();
  await rm(dir, { recursive: true, force: true });
});

async function connect(exportName: string, structured: boolean): Promise<RawNbdClient> {
  const c = await RawNbdClient.connect(join(dir, 'nbd.sock'));
  clients.push(c);
  if (structured) {
    await c.greet();
    c.sendOption(OPT_STRUCTURED_REPLY);
    expect((await c.readOptionReplies()).at(-1)?.type).toBe(1);
    c.sendOption(7, RawNbdClient.infoPayload(exportName));
    expect((await c.readOptionReplies()).at(-1)?.type).toBe(1);
  } else {
    await c.goTo(exportName);
  }
  return c;
}

/** Reads [offset, offset+length) with a simple-reply client; returns the data. */
async function readSimple(c: RawNbdClient, offset: number, length: number, cookie = 1n): Promise<Buffer> {
  c.sendRequest(CMD_READ, { cookie, offset: BigInt(offset), length });
  const reply = await c.readReply(length);
  expect(reply.error).toBe(0);
  expect(reply.cookie).toBe(cookie);
  return reply.data;
}

const fileReplies = (): FileReplyCounts => server.stats().fileReplies;

/** Takes a snapshot of disk1 and returns its image's export name. */
async function takeImage(): Promise<string> {
  const id = await engine.snapshotCreate({ diffStoragePath: join(dir, 'diff.storage'), limitSectors: (64 * MiB) / 512 });
  await engine.snapshotAdd(id, 'disk1');
  await engine.snapshotTake(id);
  return engine.listImages().find((i) => i.device === 'disk1')!.name;
}

describe.skipIf(!sendFileAvailable())('NBD READ replies sent by reference (Linux x86-64 with cachestat)', () => {
  it('pipelined 1.5 MiB READs, simple replies, the client not reading at first: every reply whole, right data, right cookie, all by reference', async () => {
    await start();
    const c = await connect('disk1', false);
    c.socket.pause();
    const length = 1536 * KiB;
    const offsets = Array.from({ length: 20 }, (_, i) => ((i * 7) % 20) * MiB);
    offsets.forEach((offset, i) => c.sendRequest(CMD_READ, { cookie: BigInt(i + 1), offset: BigInt(offset), length }));
    // Let the server fill the socket while the client reads nothing.
    await new Promise((r) => setTimeout(r, 300));
    const whilePaused = fileReplies();
    c.socket.resume();
    const seen = new Set<bigint>();
    for (let i = 0; i < offsets.length; i++) {
      const reply = await c.readReply(length);
      expect(reply.magic).toBe(0x67446698);
      expect(reply.error).toBe(0);
      const offset = offsets[Number(reply.cookie) - 1]!;
      expect(reply.data.equals(content.subarray(offset, offset + length)), `reply for cookie ${reply.cookie}`).toBe(true);
      seen.add(reply.cookie);
    }
    expect(seen.size).toBe(offsets.length);
    // The socket filled up: some replies went at once, one in part (the rest copied
    // after it); the others waited for room and then went by reference too.
    expect(whilePaused.replies).toBeGreaterThan(0);
    expect(whilePaused.replies).toBeLessThan(offsets.length);
    expect(whilePaused.partial).toBeGreaterThan(0);
    expect(fileReplies().replies).toBe(offsets.length);
  });

  it('structured replies: one OFFSET_DATA chunk with its offset and the right data; a range with a hole is answered with its hole chunk', async () => {
    await start();
    // A hole at [8 MiB, 9 MiB).
    await run('fallocate', ['--punch-hole', '--offset', String(8 * MiB), '--length', String(MiB), imagePath]);
    content.fill(0, 8 * MiB, 9 * MiB);
    const c = await connect('disk1', true);
    c.sendRequest(CMD_READ, { cookie: 5n, offset: BigInt(3 * MiB), length: MiB });
    const chunks = await c.readChunks();
    expect(chunks).toHaveLength(1);
    expect(chunks[0]!.type).toBe(CHUNK_OFFSET_DATA);
    expect(chunks[0]!.cookie).toBe(5n);
    expect(chunks[0]!.payload.readBigUInt64BE(0)).toBe(BigInt(3 * MiB));
    expect(chunks[0]!.payload.subarray(8).equals(content.subarray(3 * MiB, 4 * MiB))).toBe(true);
    expect(fileReplies().bytes).toBe(MiB);

    c.sendRequest(CMD_READ, { cookie: 6n, offset: BigInt(8 * MiB), length: 2 * MiB });
    const withHole = await c.readChunks();
    expect(withHole.map((ch) => ch.type).sort()).toEqual([CHUNK_OFFSET_DATA, CHUNK_OFFSET_HOLE].sort());
    expect(fileReplies().bytes).toBe(MiB);
  });

  it('a range not in the page cache is copied (read through the thread pool) the first time, and sent by reference once cached', async () => {
    await start();
    dropFromPageCache(imagePath);
    const c = await connect('disk1', false);
    expect((await readSimple(c, 5 * MiB, MiB)).equals(content.subarray(5 * MiB, 6 * MiB))).toBe(true);
    expect(fileReplies().replies).toBe(0);
    expect((await readSimple(c, 5 * MiB, MiB, 2n)).equals(content.subarray(5 * MiB, 6 * MiB))).toBe(true);
    expect(fileReplies()).toMatchObject({ replies: 1, bytes: MiB, partial: 0 });
  });

  it('READs below fileReplyMinBytes, and every READ when it is Infinity, are copied', async () => {
    await start({ fileReplyMinBytes: 256 * KiB });
    const c = await connect('disk1', false);
    expect((await readSimple(c, 0, 128 * KiB)).equals(content.subarray(0, 128 * KiB))).toBe(true);
    expect(fileReplies().replies).toBe(0);
    expect((await readSimple(c, 0, 256 * KiB, 2n)).equals(content.subarray(0, 256 * KiB))).toBe(true);
    expect(fileReplies().replies).toBe(1);
    c.close();
    await server.close();
    await start({ fileReplyMinBytes: Infinity });
    const d = await connect('disk1', false);
    expect((await readSimple(d, MiB, 4 * MiB)).equals(content.subarray(MiB, 5 * MiB))).toBe(true);
    expect(fileReplies().replies).toBe(0);
  });

  it('a snapshot image is never sent by reference: its reads keep the data at take while the device is written', async () => {
    await start();
    const image = await takeImage();
    const img = await connect(image, false);
    const dev = await connect('disk1', false);
    for (let round = 0; round < 2; round++) {
      expect((await readSimple(img, 2 * MiB, MiB, BigInt(round + 1))).equals(content.subarray(2 * MiB, 3 * MiB))).toBe(true);
    }
    expect(fileReplies().replies).toBe(0);
    const fresh = randomBytes(MiB);
    dev.sendRequest(CMD_WRITE, { cookie: 9n, offset: BigInt(2 * MiB), length: MiB, payload: fresh });
    expect((await dev.readReply()).error).toBe(0);
    expect((await readSimple(img, 2 * MiB, MiB, 3n)).equals(content.subarray(2 * MiB, 3 * MiB))).toBe(true);
    expect(fileReplies().replies).toBe(0);
    // The device's own READ of the same bytes is live data: by reference, the new bytes.
    expect((await readSimple(dev, 2 * MiB, MiB, 10n)).equals(fresh)).toBe(true);
    expect(fileReplies().replies).toBe(1);
  });

  it('small READs of a snapshot image are answered at once (the fast path, copied), with the data at take, while the device is written', async () => {
    await start();
    const image = await takeImage();
    const img = await connect(image, false);
    const dev = await connect('disk1', false);
    // Chunks of 64 KiB (the engine's parameters here): every 4th one is overwritten on
    // the device between the image's reads, so they are read from the original,
    // from memory or from the difference storage.
    const offsets = Array.from({ length: 64 }, (_, i) => i * 64 * KiB + (i % 16) * 4 * KiB);
    const before = fileReplies().direct;
    for (let i = 0; i < offsets.length; i++) {
      const at = offsets[i]!;
      if (i % 4 === 0) {
        dev.sendRequest(CMD_WRITE, { cookie: BigInt(1000 + i), offset: BigInt(at - (at % (64 * KiB))), length: 64 * KiB, payload: randomBytes(64 * KiB) });
        expect((await dev.readReply()).error).toBe(0);
      }
      const got = await readSimple(img, at, 4 * KiB, BigInt(i + 1));
      expect(got.equals(content.subarray(at, at + 4 * KiB)), `READ at ${at}`).toBe(true);
      if (i % 4 === 0) {
        const again = await readSimple(img, at, 4 * KiB, BigInt(500 + i));
        expect(again.equals(content.subarray(at, at + 4 * KiB)), `READ at ${at} after the write`).toBe(true);
      }
    }
    expect(fileReplies().replies).toBe(0); // never by reference
    // Answered on the fast path: its replies are the ones written straight to the socket
    // (the device's WRITE replies too: one per 4 READs).
    expect(fileReplies().direct - before).toBeGreaterThanOrEqual(offsets.length);
    // A structured READ of 128 KiB without holes: the image's holes are found at once
    // (extentsNow), so it takes the fast path too: one OFFSET_DATA chunk.
    const structured = await connect(image, true);
    const directBefore = fileReplies().direct;
    structured.sendRequest(CMD_READ, { cookie: 77n, offset: BigInt(4 * MiB), length: 128 * KiB });
    const chunks = await structured.readChunks();
    expect(chunks.map((c) => c.type)).toEqual([CHUNK_OFFSET_DATA]);
    expect(chunks[0]!.payload.subarray(8).equals(content.subarray(4 * MiB, 4 * MiB + 128 * KiB))).toBe(true);
    expect(fileReplies().direct - directBefore).toBe(1);
  });

  it('a reply waiting for room when its device closes never sends another file\'s bytes: the connection is dropped instead', async () => {
    await start();
    const raw = await FileBlockDevice.open(join(dir, 'raw.img'), 'raw');
    await server.close();
    server = new NbdServer({ exports: staticExports([raw]), unixSocket: join(dir, 'raw.sock') });
    await server.start();
    const c = await RawNbdClient.connect(join(dir, 'raw.sock'));
    clients.push(c);
    await c.goTo('raw');
    c.socket.pause();
    for (let i = 0; i < 12; i++) c.sendRequest(CMD_READ, { cookie: BigInt(i + 1), offset: BigInt(i * MiB), length: MiB });
    await new Promise((r) => setTimeout(r, 300));
    expect(fileReplies().replies).toBeGreaterThan(0);
    expect(fileReplies().replies).toBeLessThan(12); // the rest wait for room
    await raw.close();
    // Files opened now are likely to get the closed descriptor's number.
    const secretPath = join(dir, 'secret');
    await writeFile(secretPath, Buffer.alloc(16 * MiB, 0xee));
    const holders = await Promise.all(Array.from({ length: 4 }, () => open(secretPath, 'r')));
    const received: Buffer[] = [];
    c.socket.on('data', (d: Buffer) => received.push(d));
    c.socket.resume();
    await Promise.race([c.closed, new Promise((r) => setTimeout(r, 5000))]);
    for (const h of holders) await h.close();
    const all = Buffer.concat(received);
    // Whatever arrived is the raw image's bytes, never the secret's.
    expect(all.includes(Buffer.alloc(4096, 0xee))).toBe(false);
    expect(c.hasClosed).toBe(true);
    expect(all.length).toBeLessThan(12 * (MiB + 16));
  });

  it.skipIf(!hasCommand('nbdcopy'))('[nbdcopy] a copy of the export in 1 MiB requests over 4 connections is byte-identical, most of it sent by reference', async () => {
    await start();
    const out = join(dir, 'copy.img');
    await writeFile(out, '');
    await truncate(out, SIZE);
    await run('nbdcopy', ['--request-size=1048576', server.uriFor('disk1'), out]);
    expect((await readFile(out)).equals(content)).toBe(true);
    expect(fileReplies().bytes).toBeGreaterThan(SIZE / 2);
  });
});
