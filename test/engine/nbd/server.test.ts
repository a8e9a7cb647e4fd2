import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlockDevice } from '../../../engine/core/block-device.js';
import { NbdServer } from '../../../engine/nbd/server.js';
import { staticExports } from '../../../engine/nbd/export-source.js';
import { fromReadSlab } from '../../../engine/nbd/socket-read-buffer.js';
import type { ExportSource } from '../../../engine/nbd/export-source.js';
import type { ConnectionLimits } from '../../../engine/nbd/connection.js';
import { hasCommand } from '../../helpers/env.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import type { MemoryDeviceOptions } from '../../helpers/memory-device.js';
import { RawNbdClient } from '../../helpers/nbd-raw-client.js';

// Protocol values, written out here independently of engine/nbd/constants.ts.
const OPT = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, STARTTLS: 5, INFO: 6, GO: 7, STRUCTURED_REPLY: 8 };
const REP = { ACK: 1, SERVER: 2, INFO: 3, ERR_UNSUP: 0x80000001, ERR_INVALID: 0x80000003, ERR_UNKNOWN: 0x80000006 };
const CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6, BLOCK_STATUS: 7 };
const FLAG_FUA = 1;
const FLAG_NO_HOLE = 2;
const EPERM = 1;
const EIO = 5;
const EINVAL = 22;
const ENOSPC = 28;
const MiB = 1024 * 1024;

let dir: string;
let server: NbdServer | null;
let socketPath: string;
let clients: RawNbdClient[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-server-test-'));
  socketPath = join(dir, 'nbd.sock');
  server = null;
  clients = [];
});

afterEach(async () => {
  for (const c of clients) c.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

async function serve(
  source: ExportSource,
  extra: { defaultExport?: string; limits?: Partial<ConnectionLimits>; receiveThreads?: number } = {},
): Promise<NbdServer> {
  server = new NbdServer({ exports: source, unixSocket: socketPath, ...extra });
  await server.start();
  return server;
}

function memory(options: Partial<MemoryDeviceOptions> & { name: string }): MemoryDevice {
  return new MemoryDevice({ capacity: 4 * MiB, ...options });
}

async function connect(): Promise<RawNbdClient> {
  const c = await RawNbdClient.connect(socketPath);
  clients.push(c);
  return c;
}

function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('NBD handshake', () => {
  it('greets with NBDMAGIC, IHAVEOPT and the FIXED_NEWSTYLE|NO_ZEROES flags', async () => {
    await serve(staticExports([memory({ name: 'disk1' })]));
    const c = await connect();
    const greeting = await c.greet();
    expect(greeting.subarray(0, 8).toString('latin1')).toBe('NBDMAGIC');
    expect(greeting.subarray(8, 16).toString('latin1')).toBe('IHAVEOPT');
    expect(greeting.readUInt16BE(16)).toBe(0b11);
  });

  it('drops a client that sets unknown client flags', async () => {
    await serve(staticExports([memory({ name: 'disk1' })]));
    const c = await connect();
    await c.greet(0x80);
    await c.closed;
    expect(c.hasClosed).toBe(true);
  });

  it('lists exports with their descriptions, and rejects NBD_OPT_LIST with data', async () => {
    await serve(staticExports([memory({ name: 'disk1' }), memory({ name: 'blksnap-image0', readOnly: true })], { disk1: 'first disk' }));
    const c = await connect();
    await c.greet();
    c.sendOption(OPT.LIST);
    const replies = await c.readOptionReplies();
    expect(replies.map((r) => r.type)).toEqual([REP.SERVER, REP.SERVER, REP.ACK]);
    const entries = replies.slice(0, 2).map((r) => {
      const n = r.data.readUInt32BE(0);
      return [r.data.toString('utf8', 4, 4 + n), r.data.toString('utf8', 4 + n)];
    });
    expect(entries).toEqual([['disk1', 'first disk'], ['blksnap-image0', '']]);
    expect(replies.every((r) => r.option === OPT.LIST)).toBe(true);

    c.sendOption(OPT.LIST, Buffer.from('x'));
    const bad = await c.readOptionReplies();
    expect(bad.map((r) => r.type)).toEqual([REP.ERR_INVALID]);
  });

  it('answers NBD_OPT_INFO with export size, flags, name, description and block sizes', async () => {
    await serve(staticExports([memory({ name: 'disk1', capacity: 8 * MiB })], { disk1: 'first disk' }));
    const c = await connect();
    await c.greet();
    c.sendOption(OPT.INFO, RawNbdClient.infoPayload('disk1', [1, 2, 3]));
    const replies = await c.readOptionReplies();
    expect(replies[replies.length - 1]?.type).toBe(REP.ACK);
    const infos = new Map(replies.filter((r) => r.type === REP.INFO).map((r) => [r.data.readUInt16BE(0), r.data.subarray(2)]));
    const exportInfo = infos.get(0);
    expect(exportInfo?.readBigUInt64BE(0)).toBe(BigInt(8 * MiB));
    // HAS_FLAGS, SEND_FLUSH, SEND_FUA, SEND_TRIM, SEND_WRITE_ZEROES, CAN_MULTI_CONN, SEND_CACHE, SEND_FAST_ZERO
    expect(exportInfo?.readUInt16BE(8)).toBe(0x1 | 0x4 | 0x8 | 0x20 | 0x40 | 0x100 | 0x400 | 0x800);
    expect(infos.get(1)?.toString()).toBe('disk1');
    expect(infos.get(2)?.toString()).toBe('first disk');
    const sizes = infos.get(3);
    expect([sizes?.readUInt32BE(0), sizes?.readUInt32BE(4), sizes?.readUInt32BE(8)]).toEqual([512, 4096, 32 * MiB]);

    // INFO does not leave negotiation: an unknown export is an error reply, then GO works.
    c.sendOption(OPT.INFO, RawNbdClient.infoPayload('nope'));
    expect((await c.readOptionReplies()).map((r) => r.type)).toEqual([REP.ERR_UNKNOWN]);
    c.sendOption(OPT.GO, RawNbdClient.infoPayload('disk1'));
    expect((await c.readOptionReplies()).at(-1)?.type).toBe(REP.ACK);
  });

  it('advertises READ_ONLY and no write features for a read-only export', async () => {
    await serve(staticExports([memory({ name: 'img', readOnly: true })]));
    const c = await connect();
    const replies = await c.goTo('img');
    const exportInfo = replies.find((r) => r.type === REP.INFO && r.data.readUInt16BE(0) === 0);
    expect(exportInfo?.data.readUInt16BE(10)).toBe(0x1 | 0x2 | 0x4 | 0x100 | 0x400); // + SEND_CACHE, no FAST_ZERO
  });

  it('answers unknown and unsupported options with NBD_REP_ERR_UNSUP and keeps negotiating', async () => {
    await serve(staticExports([memory({ name: 'disk1' })]));
    const c = await connect();
    await c.greet();
    for (const option of [OPT.STARTTLS, 11, 4242]) {
      c.sendOption(option, Buffer.from('abc'));
      const [reply] = await c.readOptionReplies();
      expect(reply).toMatchObject({ option, type: REP.ERR_UNSUP });
    }
    c.sendOption(OPT.STRUCTURED_REPLY, Buffer.from('abc')); // takes no data
    expect((await c.readOptionReplies())[0]).toMatchObject({ option: OPT.STRUCTURED_REPLY, type: REP.ERR_INVALID });
    c.sendOption(OPT.INFO, Buffer.from([0, 0, 0, 9, 1])); // name length past the payload
    expect((await c.readOptionReplies())[0]?.type).toBe(REP.ERR_INVALID);
    c.sendOption(OPT.GO, RawNbdClient.infoPayload('disk1'));
    expect((await c.readOptionReplies()).at(-1)?.type).toBe(REP.ACK);
  });

  it('acknowledges NBD_OPT_ABORT and closes', async () => {
    await serve(staticExports([memory({ name: 'disk1' })]));
    const c = await connect();
    await c.greet();
    c.sendOption(OPT.ABORT);
    expect((await c.readOptionReply()).type).toBe(REP.ACK);
    await c.closed;
  });

  it('enters transmission with NBD_OPT_EXPORT_NAME, with or without the 124 zero bytes', async () => {
    await serve(staticExports([memory({ name: 'disk1', capacity: 2 * MiB })]));
    for (const [clientFlags, replyLength] of [[0b11, 10], [0b01, 134], [0b00, 134]] as const) {
      const c = await connect();
      await c.greet(clientFlags);
      c.sendOption(OPT.EXPORT_NAME, Buffer.from('disk1'));
      const reply = await c.reader.read(replyLength);
      expect(reply.readBigUInt64BE(0)).toBe(BigInt(2 * MiB));
      expect(reply.readUInt16BE(8) & 0x1).toBe(1);
      if (replyLength === 134) expect(reply.subarray(10).every((b) => b === 0)).toBe(true);
      c.sendRequest(CMD.READ, { length: 512 });
      expect((await c.readReply(512)).error).toBe(0);
      await new Promise((r) => setTimeout(r, 20));
      expect(c.reader.available).toBe(0); // nothing beyond the reply
    }
  });

  it('ends the session on NBD_OPT_EXPORT_NAME for an unknown export, and on bad option magic', async () => {
    await serve(staticExports([memory({ name: 'disk1' })]));
    const a = await connect();
    await a.greet();
    a.sendOption(OPT.EXPORT_NAME, Buffer.from('missing'));
    await a.closed;
    const b = await connect();
    await b.greet();
    b.sendOption(OPT.LIST, Buffer.alloc(0), 0x1234n);
    await b.closed;
  });

  it('drops a client that stalls in the handshake or sends an oversized option', async () => {
    await serve(staticExports([memory({ name: 'disk1' })]), { limits: { handshakeTimeoutMs: 100, maxOptionLength: 1024 } });
    const slow = await connect();
    await slow.greet(); // then nothing
    const big = await connect();
    await big.greet();
    big.sendOption(OPT.LIST, Buffer.alloc(2048));
    await Promise.all([slow.closed, big.closed]);
    const ok = await connect();
    await ok.goTo('disk1');
  });

  it('serves the default export for the empty name', async () => {
    await serve(staticExports([memory({ name: 'disk1', capacity: 3 * MiB })]), { defaultExport: 'disk1' });
    const c = await connect();
    const replies = await c.goTo('');
    expect(replies.find((r) => r.type === REP.INFO)?.data.readBigUInt64BE(2)).toBe(BigInt(3 * MiB));
  });

  it('sees exports that appear and disappear after the server started', async () => {
    const devices = new Map<string, BlockDevice>();
    await serve({ list: () => [...devices.keys()].map((name) => ({ name })), open: (name) => devices.get(name) });
    const c = await connect();
    await c.greet();
    c.sendOption(OPT.INFO, RawNbdClient.infoPayload('blksnap-image0'));
    expect((await c.readOptionReplies())[0]?.type).toBe(REP.ERR_UNKNOWN);
    devices.set('blksnap-image0', memory({ name: 'blksnap-image0', readOnly: true }));
    c.sendOption(OPT.LIST);
    expect((await c.readOptionReplies()).length).toBe(2);
    c.sendOption(OPT.INFO, RawNbdClient.infoPayload('blksnap-image0'));
    expect((await c.readOptionReplies()).at(-1)?.type).toBe(REP.ACK);
  });
});

describe('NBD transmission', () => {
  it('writes and reads back, with FUA, flush, trim and write-zeroes reaching the device', async () => {
    const dev = memory({ name: 'disk1' });
    await serve(staticExports([dev]));
    const c = await connect();
    await c.goTo('disk1');
    const data = pattern(64 * 1024, 7);
    c.sendRequest(CMD.WRITE, { cookie: 11n, offset: 4096n, length: data.length, payload: data, flags: FLAG_FUA });
    expect(await c.readReply()).toMatchObject({ magic: 0x67446698, error: 0, cookie: 11n });
    expect(dev.log.at(-1)).toMatchObject({ op: 'write', offset: 4096, length: data.length, fua: true });

    c.sendRequest(CMD.READ, { cookie: 12n, offset: 4096n, length: data.length });
    const read = await c.readReply(data.length);
    expect(read.cookie).toBe(12n);
    expect(read.data.equals(data)).toBe(true);

    c.sendRequest(CMD.FLUSH, { cookie: 13n });
    expect((await c.readReply()).error).toBe(0);
    expect(dev.flushes).toBe(1);

    c.sendRequest(CMD.TRIM, { cookie: 14n, offset: 4096n, length: 8192 });
    c.sendRequest(CMD.WRITE_ZEROES, { cookie: 15n, offset: 16384n, length: 4096, flags: FLAG_NO_HOLE | FLAG_FUA });
    expect((await c.readReply()).error).toBe(0);
    expect((await c.readReply()).error).toBe(0);
    expect(dev.data.subarray(4096, 4096 + 8192).every((b) => b === 0)).toBe(true);
    expect(dev.data.subarray(16384, 20480).every((b) => b === 0)).toBe(true);
    expect(dev.data.subarray(20480, 4096 + data.length).equals(data.subarray(16384))).toBe(true);
    expect(dev.flushes).toBe(2); // write-zeroes with FUA flushed
  });

  it('answers pipelined requests out of order, each reply matched by cookie', async () => {
    // The first request is held until every later one is answered: replies come back reordered.
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const dev = memory({ name: 'disk1', gate: (op, offset) => (op === 'read' && offset === 0 ? held : undefined) });
    dev.data.set(pattern(dev.capacity, 3));
    await serve(staticExports([dev]));
    const c = await connect();
    await c.goTo('disk1');
    const lengths = new Map<bigint, number>();
    for (let i = 0; i < 16; i++) {
      const length = 4096 * (1 + (i % 3));
      lengths.set(BigInt(i + 100), length);
      c.sendRequest(CMD.READ, { cookie: BigInt(i + 100), offset: BigInt(i * 65536), length });
    }
    const order: bigint[] = [];
    for (let i = 0; i < 16; i++) {
      if (i === 15) release();
      const reply = await c.readReply((cookie) => lengths.get(cookie) ?? 0);
      expect(reply.error).toBe(0);
      const index = Number(reply.cookie - 100n);
      const offset = index * 65536;
      expect(reply.data.equals(dev.data.subarray(offset, offset + (lengths.get(reply.cookie) ?? 0)))).toBe(true);
      order.push(reply.cookie);
    }
    expect(order.at(-1)).toBe(100n);
    expect([...order].sort()).toEqual([...lengths.keys()].sort());
  });

  it('answers invalid requests with the protocol errors and keeps the connection', async () => {
    const dev = memory({ name: 'disk1', capacity: MiB });
    const ro = memory({ name: 'img', capacity: MiB, readOnly: true });
    await serve(staticExports([dev, ro]));
    const c = await connect();
    await c.goTo('disk1');
    const cases: [string, () => void, number][] = [
      ['read past the end', () => c.sendRequest(CMD.READ, { offset: BigInt(MiB - 512), length: 1024 }), EINVAL],
      ['read at 2^63', () => c.sendRequest(CMD.READ, { offset: 1n << 63n, length: 512 }), EINVAL],
      ['write past the end', () => c.sendRequest(CMD.WRITE, { offset: BigInt(MiB), length: 512, payload: Buffer.alloc(512) }), ENOSPC],
      ['write-zeroes past the end', () => c.sendRequest(CMD.WRITE_ZEROES, { offset: BigInt(MiB - 512), length: 1024 }), ENOSPC],
      ['trim past the end', () => c.sendRequest(CMD.TRIM, { offset: BigInt(MiB), length: 512 }), EINVAL],
      ['unaligned read', () => c.sendRequest(CMD.READ, { offset: 100n, length: 512 }), EINVAL],
      ['unaligned write', () => c.sendRequest(CMD.WRITE, { offset: 0n, length: 100, payload: Buffer.alloc(100) }), EINVAL],
      ['zero-length read', () => c.sendRequest(CMD.READ, { offset: 0n, length: 0 }), EINVAL],
      ['read over the payload cap', () => c.sendRequest(CMD.READ, { offset: 0n, length: 64 * MiB }), EINVAL],
      ['unknown command', () => c.sendRequest(99, { offset: 0n, length: 512 }), EINVAL],
      ['CACHE past the end', () => c.sendRequest(CMD.CACHE, { offset: BigInt(MiB), length: 512 }), EINVAL],
      ['CACHE with FUA', () => c.sendRequest(CMD.CACHE, { length: 512, flags: 1 }), EINVAL],
      ['WRITE_ZEROES with FAST_ZERO (never fast here)', () => c.sendRequest(CMD.WRITE_ZEROES, { length: 512, flags: 0x10 }), 95],
      ['BLOCK_STATUS without meta contexts', () => c.sendRequest(CMD.BLOCK_STATUS, { offset: 0n, length: 512 }), EINVAL],
      ['unknown command flag', () => c.sendRequest(CMD.READ, { offset: 0n, length: 512, flags: 0x8000 }), EINVAL],
      ['NO_HOLE on a write', () => c.sendRequest(CMD.WRITE, { length: 512, payload: Buffer.alloc(512), flags: FLAG_NO_HOLE }), EINVAL],
    ];
    for (const [what, send, errno] of cases) {
      send();
      const reply = await c.readReply();
      expect({ what, error: reply.error }).toEqual({ what, error: errno });
    }
    expect(dev.log).toEqual([]); // none of them reached the device
    c.sendRequest(CMD.READ, { offset: 0n, length: 512 });
    expect((await c.readReply(512)).error).toBe(0);
    c.sendRequest(CMD.CACHE, { offset: 0n, length: MiB });
    expect((await c.readReply()).error).toBe(0);

    const r = await connect();
    await r.goTo('img');
    r.sendRequest(CMD.WRITE, { length: 512, payload: Buffer.alloc(512) });
    r.sendRequest(CMD.TRIM, { length: 512 });
    r.sendRequest(CMD.WRITE_ZEROES, { length: 512 });
    for (let i = 0; i < 3; i++) expect((await r.readReply()).error).toBe(EPERM);
    r.sendRequest(CMD.READ, { length: 512 });
    expect((await r.readReply(512)).error).toBe(0);
  });

  it('answers a device error with the mapped NBD error, and goes on serving', async () => {
    const dev = memory({
      name: 'disk1',
      failWith: (op, offset) => (offset === 8192 ? (op === 'read' ? 'EIO' : 'ENOSPC') : op === 'flush' ? 'EBUSY' : undefined),
    });
    await serve(staticExports([dev]));
    const c = await connect();
    await c.goTo('disk1');
    c.sendRequest(CMD.READ, { cookie: 1n, offset: 8192n, length: 512 });
    expect(await c.readReply(512)).toMatchObject({ cookie: 1n, error: EIO, data: Buffer.alloc(0) });
    c.sendRequest(CMD.WRITE, { cookie: 2n, offset: 8192n, length: 512, payload: Buffer.alloc(512, 1) });
    expect(await c.readReply()).toMatchObject({ cookie: 2n, error: ENOSPC });
    c.sendRequest(CMD.FLUSH, { cookie: 3n });
    expect(await c.readReply()).toMatchObject({ cookie: 3n, error: EIO }); // EBUSY has no NBD value
    c.sendRequest(CMD.READ, { cookie: 4n, offset: 0n, length: 512 });
    expect(await c.readReply(512)).toMatchObject({ cookie: 4n, error: 0 });
  });

  it('drops only the connection that sends a bad magic or an oversized write', async () => {
    const dev = memory({ name: 'disk1' });
    await serve(staticExports([dev]));
    const good = await connect();
    await good.goTo('disk1');
    const badMagic = await connect();
    await badMagic.goTo('disk1');
    const tooBig = await connect();
    await tooBig.goTo('disk1');

    badMagic.sendRequest(CMD.READ, { length: 512, magic: 0xdeadbeef });
    tooBig.sendRequest(CMD.WRITE, { length: 64 * MiB });
    await Promise.all([badMagic.closed, tooBig.closed]);

    const data = pattern(4096, 9);
    good.sendRequest(CMD.WRITE, { cookie: 5n, offset: 0n, length: 4096, payload: data });
    expect((await good.readReply()).error).toBe(0);
    good.sendRequest(CMD.READ, { cookie: 6n, offset: 0n, length: 4096 });
    expect((await good.readReply(4096)).data.equals(data)).toBe(true);

    // and new clients are still welcome
    const next = await connect();
    await next.goTo('disk1');
  });

  it('answers requests still running before closing on NBD_CMD_DISC', async () => {
    const dev = memory({ name: 'disk1', delayMs: (op) => (op === 'write' ? 50 : 0) });
    await serve(staticExports([dev]));
    const c = await connect();
    await c.goTo('disk1');
    const data = pattern(512, 1);
    c.sendRequest(CMD.WRITE, { cookie: 77n, offset: 0n, length: 512, payload: data });
    c.sendRequest(CMD.DISC, { cookie: 78n });
    const reply = await c.readReply();
    expect(reply).toMatchObject({ cookie: 77n, error: 0 });
    await c.closed;
    expect(dev.data.subarray(0, 512).equals(data)).toBe(true);
  });

  it('stops reading requests while maxInFlight requests or maxInFlightBytes are running', async () => {
    for (const limits of [{ maxInFlight: 2 }, { maxInFlightBytes: 8192 }]) {
      // Every read waits until two are inside the device; a third would have to wait for ever.
      let release = (): void => undefined;
      const two = new Promise<void>((resolve) => (release = resolve));
      const dev = memory({ name: 'disk1', gate: () => (dev.active >= 2 ? (release(), two) : two) });
      await server?.close();
      await serve(staticExports([dev]), { limits });
      const c = await connect();
      await c.goTo('disk1');
      for (let i = 0; i < 6; i++) c.sendRequest(CMD.READ, { cookie: BigInt(i), offset: BigInt(i * 4096), length: 4096 });
      const cookies: bigint[] = [];
      for (let i = 0; i < 6; i++) cookies.push((await c.readReply(4096)).cookie);
      expect(cookies.sort()).toEqual([0n, 1n, 2n, 3n, 4n, 5n]);
      expect({ limits, maxActive: dev.maxActive }).toEqual({ limits, maxActive: 2 });
    }
  });

  it('answers running requests before closing connections on server.close()', async () => {
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const dev = memory({ name: 'disk1', gate: (op) => (op === 'write' ? held : undefined) });
    const s = await serve(staticExports([dev]));
    const c = await connect();
    await c.goTo('disk1');
    c.sendRequest(CMD.WRITE, { cookie: 9n, offset: 0n, length: 512, payload: Buffer.alloc(512, 3) });
    while (dev.active === 0) await new Promise((r) => setTimeout(r, 2)); // the write is inside the device
    const closing = s.close();
    c.sendRequest(CMD.READ, { cookie: 10n, offset: 0n, length: 512 }); // too late: ESHUTDOWN
    expect(await c.readReply()).toMatchObject({ cookie: 10n, error: 108 });
    release();
    expect(await c.readReply()).toMatchObject({ cookie: 9n, error: 0 });
    await closing;
    await c.closed;
    expect(dev.data[0]).toBe(3);
  });

  it('handles a 32 MiB write and read split across many socket chunks', async () => {
    const dev = memory({ name: 'disk1', capacity: 40 * MiB });
    await serve(staticExports([dev]));
    const c = await connect();
    await c.goTo('disk1');
    const data = pattern(32 * MiB, 5);
    c.sendRequest(CMD.WRITE, { cookie: 1n, offset: BigInt(MiB), length: data.length, payload: data });
    expect((await c.readReply()).error).toBe(0);
    c.sendRequest(CMD.READ, { cookie: 2n, offset: BigInt(MiB), length: data.length });
    const reply = await c.readReply(data.length);
    expect(reply.data.equals(data)).toBe(true);
  });
});

/** A MemoryDevice that can also read into a given buffer (BlockDevice.readTo). */
class ReadToDevice extends MemoryDevice {
  readToCalls = 0;
  async readTo(offset: number, length: number, target: Buffer, targetOffset: number): Promise<void> {
    this.readToCalls++;
    const data = await this.read(offset, length);
    data.copy(target, targetOffset);
  }
}

describe('NBD transmission: reads into reply frames, large payloads', () => {
  it('reads through readTo into the reply frame; an error sends no data; reused frames never mix data', async () => {
    const content = pattern(4 * MiB, 3);
    const dev = new ReadToDevice({
      name: 'disk1',
      capacity: 4 * MiB,
      content,
      failWith: (op, offset) => (op === 'read' && offset === 3 * MiB ? 'EIO' : undefined),
    });
    await serve(staticExports([dev]));
    const c = await connect();
    await c.goTo('disk1');
    // Three rounds of 24 pipelined 64 KiB reads: later rounds reuse the frames of earlier ones.
    for (let round = 0; round < 3; round++) {
      const want = new Map<bigint, number>();
      for (let i = 0; i < 24; i++) {
        const offset = ((i * 7 + round * 5) % 48) * 65536;
        const cookie = BigInt(round * 100 + i);
        want.set(cookie, offset);
        c.sendRequest(CMD.READ, { cookie, offset: BigInt(offset), length: 65536 });
      }
      for (let i = 0; i < 24; i++) {
        const reply = await c.readReply(65536);
        const offset = want.get(reply.cookie)!;
        expect(reply.error).toBe(0);
        expect(reply.data.equals(content.subarray(offset, offset + 65536))).toBe(true);
      }
    }
    c.sendRequest(CMD.READ, { cookie: 900n, offset: BigInt(3 * MiB), length: 65536 });
    expect(await c.readReply(65536)).toMatchObject({ cookie: 900n, error: EIO, data: Buffer.alloc(0) });
    c.sendRequest(CMD.READ, { cookie: 901n, offset: 0n, length: 4096 });
    const last = await c.readReply(4096);
    expect(last.error).toBe(0);
    expect(last.data.equals(content.subarray(0, 4096))).toBe(true);
    expect(dev.readToCalls).toBe(3 * 24 + 2);
  });

  it('gathers pipelined 1 MiB write payloads from many socket chunks, each intact', async () => {
    const dev = memory({ name: 'disk1', capacity: 16 * MiB, delayMs: (op) => (op === 'write' ? 2 : 0) });
    await serve(staticExports([dev]));
    const c = await connect();
    await c.goTo('disk1');
    // 1 MiB payloads span many socket chunks; the device takes its time with each.
    const payloads = Array.from({ length: 12 }, (_, i) => pattern(MiB, 11 + i));
    for (const [i, p] of payloads.entries()) c.sendRequest(CMD.WRITE, { cookie: BigInt(i), offset: BigInt(i * MiB), length: MiB, payload: p });
    for (let i = 0; i < payloads.length; i++) expect((await c.readReply()).error).toBe(0);
    for (const [i, p] of payloads.entries()) expect(dev.data.subarray(i * MiB, (i + 1) * MiB).equals(p)).toBe(true);
  });
});

describe('NbdServer lifecycle', () => {
  it('gives standard URIs, listens on 127.0.0.1 only, and removes its socket on close', async () => {
    const s = new NbdServer({ exports: staticExports([memory({ name: 'disk1' })]), unixSocket: socketPath, tcpPort: 0 });
    server = s;
    await s.start();
    expect(s.uriFor('disk1')).toBe(`nbd+unix:///disk1?socket=${socketPath}`);
    expect(s.uriFor('blksnap image#1')).toBe(`nbd+unix:///blksnap%20image%231?socket=${socketPath}`);
    const port = s.tcpPort;
    expect(port).toBeGreaterThan(0);
    expect(s.uriFor('disk1', 'tcp')).toBe(`nbd://127.0.0.1:${port}/disk1`);
    expect((await stat(socketPath)).isSocket()).toBe(true);

    const c = await connect();
    await c.goTo('disk1');
    await s.close();
    await c.closed;
    await expect(stat(socketPath)).rejects.toThrow(/ENOENT/);
    await expect(
      new Promise((resolve, reject) => {
        const probe = createConnection(port ?? 0, '127.0.0.1');
        probe.once('connect', () => resolve(probe.destroy()));
        probe.once('error', reject);
      }),
    ).rejects.toThrow(/ECONNREFUSED/);
  });

  it('refuses to steal a live socket', async () => {
    const first = new NbdServer({ exports: staticExports([]), unixSocket: socketPath });
    await first.start();
    const second = new NbdServer({ exports: staticExports([]), unixSocket: socketPath });
    await expect(second.start()).rejects.toMatchObject({ errno: 'EBUSY' });
    await first.close();
    await expect(new NbdServer({ exports: staticExports([]), unixSocket: dir }).start()).rejects.toMatchObject({ errno: 'EEXIST' });
  });

  it.skipIf(!hasCommand('python3'))('[python3] replaces a stale socket file left by a dead server', async () => {
    // bind() without listen() leaves a socket file nobody accepts on, as a crashed server would.
    execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', socketPath]);
    expect((await stat(socketPath)).isSocket()).toBe(true);
    await serve(staticExports([memory({ name: 'disk1' })]));
    const c = await connect();
    await c.goTo('disk1');
  });
});

/** A MemoryDevice with writev that takes the bytes late, as a thread-pool pwritev does, and records the buffers it got. */
class LateWritevDevice extends MemoryDevice {
  /** The ArrayBuffers behind each writev's pieces of 64 KiB or more read into pooled buffers (not read slabs, which are never reused), in call order. */
  readonly seen: Set<ArrayBufferLike>[] = [];
  /** Large buffers of writes not finished yet: none may be handed to another write meanwhile. */
  private readonly busy = new Set<ArrayBufferLike>();
  sharedWhileBusy = 0;

  async writev(offset: number, data: readonly Buffer[]): Promise<void> {
    const mine = new Set(data.filter((d) => d.length >= 64 * 1024 && !fromReadSlab(d)).map((d) => d.buffer));
    for (const b of mine) if (this.busy.has(b)) this.sharedWhileBusy++;
    for (const b of mine) this.busy.add(b);
    this.seen.push(mine);
    await new Promise((r) => setTimeout(r, 1 + ((offset / MiB) % 4)));
    for (const b of mine) this.busy.delete(b);
    await this.write(offset, Buffer.concat(data));
  }
}

describe('NBD transmission: WRITE payloads read straight into pooled buffers', () => {
  it.each([
    ['the event loop', 0],
    ['receive threads', 4],
  ])('pipelined 1 MiB writes land intact over rounds that reuse the buffers, none shared by two writes at once (payloads read by %s)', async (_by, receiveThreads) => {
    const dev = new LateWritevDevice({ name: 'disk1', capacity: 16 * MiB });
    const s = await serve(staticExports([dev]), { receiveThreads });
    await s.startReceivers();
    expect(s.stats().receivers.workers).toBe(receiveThreads);
    const c = await connect();
    await c.goTo('disk1');
    for (let round = 0; round < 4; round++) {
      const written: Buffer[] = [];
      for (let i = 0; i < 16; i++) {
        const data = pattern(MiB, round * 16 + i);
        written.push(data);
        c.sendRequest(CMD.WRITE, { cookie: BigInt(i), offset: BigInt(i * MiB), length: MiB, payload: data });
      }
      for (let i = 0; i < 16; i++) expect((await c.readReply()).error).toBe(0);
      for (let i = 0; i < 16; i++) expect(dev.data.subarray(i * MiB, (i + 1) * MiB).equals(written[i]!), `round ${round}, MiB ${i}`).toBe(true);
    }
    expect(dev.sharedWhileBusy).toBe(0);
    // Most of each payload came in a buffer of its own, and later rounds reused earlier rounds' buffers.
    const early = new Set(dev.seen.slice(0, 16).flatMap((s) => [...s]));
    const reused = dev.seen.slice(16).filter((s) => [...s].some((b) => early.has(b))).length;
    expect(reused).toBeGreaterThan(8);
    // Where there are receive threads, they took most of the payload bytes.
    const { receives, bytes, busy } = s.stats().receivers;
    if (receiveThreads === 0) expect(receives).toBe(0);
    else {
      expect(receives).toBeGreaterThan(32);
      expect(bytes).toBeGreaterThan(32 * MiB);
      expect(busy).toBe(0);
    }
  });
});
