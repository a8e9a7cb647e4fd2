/**
 * Structured replies and meta contexts at the byte level (engine/nbd/meta-context.ts,
 * negotiation.ts, transmission.ts): option answers, the chunks of a READ over holes,
 * error chunks, and BLOCK_STATUS descriptors of base:allocation and the CBT contexts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlockExtent, ChangeMap } from '../../../engine/core/block-device.js';
import { staticExports } from '../../../engine/nbd/export-source.js';
import { NbdServer } from '../../../engine/nbd/server.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { RawNbdClient } from '../../helpers/nbd-raw-client.js';
import type { OptionReply, ReplyChunk } from '../../helpers/nbd-raw-client.js';

const KiB = 1024;
const OPT = { GO: 7, STRUCTURED_REPLY: 8, LIST_META: 9, SET_META: 10 };
const REP = { ACK: 1, META_CONTEXT: 4, ERR_INVALID: 0x80000003, ERR_UNKNOWN: 0x80000006 };
const CMD = { READ: 0, WRITE: 1, BLOCK_STATUS: 7 };
const CHUNK = { OFFSET_DATA: 1, OFFSET_HOLE: 2, BLOCK_STATUS: 5, ERROR: 0x8001, ERROR_OFFSET: 0x8002 };
const STRUCTURED_MAGIC = 0x668e33ef;
const DONE = 1;
const REQ_ONE = 8;

/** The device's layout: data at [64K, 128K) and [512K, 516K), holes elsewhere (1 MiB). */
const DATA_RUNS: [number, number][] = [[64 * KiB, 64 * KiB], [512 * KiB, 4 * KiB]];
const CAPACITY = 1024 * KiB;

let dir: string;
let server: NbdServer;
let device: MemoryDevice & { extents(offset: number, length: number): Promise<BlockExtent[]>; changeMap(): ChangeMap };
let clients: RawNbdClient[];
let content: Buffer;

function layoutExtents(offset: number, length: number): BlockExtent[] {
  const out: BlockExtent[] = [];
  let pos = offset;
  const end = offset + length;
  for (const [o, l] of [...DATA_RUNS, [end, 0] as [number, number]]) {
    if (o + l <= pos) continue;
    if (o > pos && pos < end) out.push({ offset: pos, length: Math.min(o, end) - pos, hole: true });
    if (o >= end) break;
    const dataEnd = Math.min(o + l, end);
    out.push({ offset: Math.max(o, pos), length: dataEnd - Math.max(o, pos), hole: false });
    pos = dataEnd;
  }
  return out;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-meta-test-'));
  content = Buffer.alloc(CAPACITY);
  for (const [o, l] of DATA_RUNS) for (let i = 0; i < l; i++) content[o + i] = (i * 7 + 1) & 0xff;
  const numbers = new Uint8Array(CAPACITY / (64 * KiB));
  numbers[3] = 2; // written after the take (change number 2)
  numbers[4] = 1; // written before it
  device = Object.assign(
    new MemoryDevice({ name: 'disk1', capacity: CAPACITY, content, failWith: (op, offset) => (op === 'read' && offset >= 512 * KiB ? 'EIO' : undefined) }),
    {
      extents: async (offset: number, length: number) => layoutExtents(offset, length),
      changeMap: (): ChangeMap => ({ blockBytes: 64 * KiB, numbers, newest: 2, generationId: 'g1' }),
    },
  );
  server = new NbdServer({ exports: staticExports([device]), unixSocket: join(dir, 'nbd.sock') });
  await server.start();
  clients = [];
});

afterEach(async () => {
  for (const c of clients) c.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

async function connect(): Promise<RawNbdClient> {
  const c = await RawNbdClient.connect(join(dir, 'nbd.sock'));
  clients.push(c);
  await c.greet();
  return c;
}

const contextsOf = (replies: OptionReply[]): [number, string][] =>
  replies.filter((r) => r.type === REP.META_CONTEXT).map((r) => [r.data.readUInt32BE(0), r.data.toString('utf8', 4)]);

/** Negotiates structured replies, selects `contexts`, and enters transmission on disk1. */
async function structured(contexts: string[]): Promise<RawNbdClient> {
  const c = await connect();
  c.sendOption(OPT.STRUCTURED_REPLY);
  expect((await c.readOptionReplies()).map((r) => r.type)).toEqual([REP.ACK]);
  if (contexts.length > 0) {
    c.sendOption(OPT.SET_META, RawNbdClient.contextPayload('disk1', contexts));
    await c.readOptionReplies();
  }
  c.sendOption(OPT.GO, RawNbdClient.infoPayload('disk1'));
  expect((await c.readOptionReplies()).at(-1)?.type).toBe(REP.ACK);
  return c;
}

/** A chunk as [type, flags, summary]: data/hole offsets and lengths, error numbers. */
function summary(chunk: ReplyChunk): [number, number, number[]] {
  const p = chunk.payload;
  switch (chunk.type) {
    case CHUNK.OFFSET_DATA:
      return [chunk.type, chunk.flags, [Number(p.readBigUInt64BE(0)), p.length - 8]];
    case CHUNK.OFFSET_HOLE:
      return [chunk.type, chunk.flags, [Number(p.readBigUInt64BE(0)), p.readUInt32BE(8)]];
    case CHUNK.ERROR:
      return [chunk.type, chunk.flags, [p.readUInt32BE(0)]];
    case CHUNK.ERROR_OFFSET:
      return [chunk.type, chunk.flags, [p.readUInt32BE(0), Number(p.readBigUInt64BE(6 + p.readUInt16BE(4)))]];
    case CHUNK.BLOCK_STATUS: {
      const runs: number[] = [p.readUInt32BE(0)];
      for (let at = 4; at < p.length; at += 8) runs.push(p.readUInt32BE(at), p.readUInt32BE(at + 4));
      return [chunk.type, chunk.flags, runs];
    }
    default:
      return [chunk.type, chunk.flags, []];
  }
}

describe('NBD meta contexts: negotiation', () => {
  it('acknowledges structured replies, lists the contexts by query, and selects only offered names', async () => {
    const c = await connect();
    c.sendOption(OPT.SET_META, RawNbdClient.contextPayload('disk1', ['base:allocation']));
    expect((await c.readOptionReplies()).map((r) => r.type)).toEqual([REP.ERR_INVALID]); // structured replies first
    c.sendOption(OPT.LIST_META, RawNbdClient.contextPayload('disk1', []));
    expect(contextsOf(await c.readOptionReplies())).toEqual([
      [0, 'base:allocation'],
      [0, 'blksnap:changed-since:0'],
      [0, 'blksnap:changed-since:1'],
      [0, 'qemu:dirty-bitmap:blksnap-0'],
      [0, 'qemu:dirty-bitmap:blksnap-1'],
    ]);
    c.sendOption(OPT.LIST_META, RawNbdClient.contextPayload('disk1', ['blksnap:', 'base:allocation', 'qemu:dirty-bitmap:blksnap-9']));
    expect(contextsOf(await c.readOptionReplies()).map(([, n]) => n)).toEqual(['blksnap:changed-since:0', 'blksnap:changed-since:1', 'base:allocation']);
    c.sendOption(OPT.LIST_META, RawNbdClient.contextPayload('nope', []));
    expect((await c.readOptionReplies()).map((r) => r.type)).toEqual([REP.ERR_UNKNOWN]);
    c.sendOption(OPT.LIST_META, Buffer.from([0, 0, 0, 5, 1])); // name past the payload
    expect((await c.readOptionReplies()).map((r) => r.type)).toEqual([REP.ERR_INVALID]);

    c.sendOption(OPT.STRUCTURED_REPLY);
    expect((await c.readOptionReplies()).map((r) => r.type)).toEqual([REP.ACK]);
    c.sendOption(OPT.SET_META, RawNbdClient.contextPayload('disk1', ['base:allocation', 'blksnap:changed-since:7', 'x:y', 'blksnap:changed-since:1']));
    const replies = await c.readOptionReplies();
    expect(contextsOf(replies)).toEqual([[1, 'base:allocation'], [2, 'blksnap:changed-since:1']]);
    expect(replies.at(-1)?.type).toBe(REP.ACK);
  });
});

describe('NBD structured replies: reads', () => {
  it('answers a READ over holes with OFFSET_HOLE and OFFSET_DATA chunks in order, the last one DONE', async () => {
    const c = await structured([]);
    c.sendRequest(CMD.READ, { cookie: 5n, offset: 0n, length: 256 * KiB });
    const chunks = await c.readChunks();
    expect(chunks.every((ch) => ch.magic === STRUCTURED_MAGIC && ch.cookie === 5n)).toBe(true);
    expect(chunks.map(summary)).toEqual([
      [CHUNK.OFFSET_HOLE, 0, [0, 64 * KiB]],
      [CHUNK.OFFSET_DATA, 0, [64 * KiB, 64 * KiB]],
      [CHUNK.OFFSET_HOLE, DONE, [128 * KiB, 128 * KiB]],
    ]);
    const data = chunks[1]!.payload.subarray(8);
    expect(data.equals(content.subarray(64 * KiB, 128 * KiB))).toBe(true);
    expect(data[1]).toBe(8); // (1 * 7 + 1): not zeroes

    // All data: one OFFSET_DATA chunk.
    c.sendRequest(CMD.READ, { cookie: 6n, offset: BigInt(64 * KiB), length: 32 * KiB });
    expect((await c.readChunks()).map(summary)).toEqual([[CHUNK.OFFSET_DATA, DONE, [64 * KiB, 32 * KiB]]]);
  });

  it('answers failed and refused reads with error chunks; writes keep simple replies', async () => {
    const c = await structured([]);
    c.sendRequest(CMD.READ, { cookie: 1n, offset: BigInt(CAPACITY - 512), length: 1024 });
    expect((await c.readChunks()).map(summary)).toEqual([[CHUNK.ERROR, DONE, [22]]]); // EINVAL, past the end
    // The device fails (EIO) reading the data extent at 512K: the error chunk names that offset.
    c.sendRequest(CMD.READ, { cookie: 2n, offset: BigInt(448 * KiB), length: 128 * KiB });
    expect((await c.readChunks()).map(summary)).toEqual([[CHUNK.ERROR_OFFSET, DONE, [5, 512 * KiB]]]);
    c.sendRequest(CMD.WRITE, { cookie: 3n, offset: BigInt(960 * KiB), length: 512, payload: Buffer.alloc(512, 1) });
    const reply = await c.readReply();
    expect([reply.magic, reply.error, reply.cookie]).toEqual([0x67446698, 0, 3n]);
  });
});

describe('NBD block status', () => {
  it('describes base:allocation and changed-since:1 in one chunk per context; REQ_ONE gives one descriptor', async () => {
    const c = await structured(['base:allocation', 'blksnap:changed-since:1', 'qemu:dirty-bitmap:blksnap-0']);
    c.sendRequest(CMD.BLOCK_STATUS, { cookie: 9n, offset: 0n, length: CAPACITY });
    const chunks = await c.readChunks();
    expect(chunks.map(summary)).toEqual([
      [CHUNK.BLOCK_STATUS, 0, [1, 64 * KiB, 3, 64 * KiB, 0, 384 * KiB, 3, 4 * KiB, 0, 508 * KiB, 3]],
      [CHUNK.BLOCK_STATUS, 0, [2, 192 * KiB, 0, 64 * KiB, 1, 768 * KiB, 0]],
      [CHUNK.BLOCK_STATUS, DONE, [3, 192 * KiB, 0, 128 * KiB, 1, 704 * KiB, 0]],
    ]);
    c.sendRequest(CMD.BLOCK_STATUS, { cookie: 10n, offset: BigInt(100 * KiB), length: 200 * KiB, flags: REQ_ONE });
    expect((await c.readChunks()).map(summary)).toEqual([
      [CHUNK.BLOCK_STATUS, 0, [1, 28 * KiB, 0]],
      [CHUNK.BLOCK_STATUS, 0, [2, 92 * KiB, 0]],
      [CHUNK.BLOCK_STATUS, DONE, [3, 92 * KiB, 0]],
    ]);
    c.sendRequest(CMD.BLOCK_STATUS, { cookie: 11n, offset: BigInt(CAPACITY), length: 512 });
    expect((await c.readChunks()).map(summary)).toEqual([[CHUNK.ERROR, DONE, [22]]]);
  });

  it('refuses BLOCK_STATUS when no context was selected', async () => {
    const c = await structured([]);
    c.sendRequest(CMD.BLOCK_STATUS, { cookie: 1n, offset: 0n, length: 4096 });
    expect((await c.readChunks()).map(summary)).toEqual([[CHUNK.ERROR, DONE, [22]]]);
  });
});
