/**
 * The NBD server survives its clients (issue 7, point 5): a client that hangs
 * up with a long queue, one that does not read its replies, one that floods the
 * handshake, too many connections, and floods of refused requests.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NbdServer } from '../../../engine/nbd/server.js';
import type { ServerLimits } from '../../../engine/nbd/server.js';
import { staticExports } from '../../../engine/nbd/export-source.js';
import type { ExportSource } from '../../../engine/nbd/export-source.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { RawNbdClient } from '../../helpers/nbd-raw-client.js';

// Protocol values, written out independently of engine/nbd/constants.ts.
const OPT_LIST = 3;
const REP_ACK = 1;
const CMD_READ = 0;
const EINVAL = 22;
const KiB = 1024;
const MiB = 1024 * KiB;

let dir: string;
let socketPath: string;
let server: NbdServer | null;
let clients: RawNbdClient[];
let logLines: string[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-survives-'));
  socketPath = join(dir, 'nbd.sock');
  server = null;
  clients = [];
  logLines = [];
});

afterEach(async () => {
  for (const c of clients) c.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The log's rate limit runs on this clock: frozen, so a slow machine cannot cross a second mid-test. */
let clockMs = 1_000_000;

async function serve(source: ExportSource, limits: Partial<ServerLimits> = {}): Promise<NbdServer> {
  const s = new NbdServer({ exports: source, unixSocket: socketPath, limits, log: (m) => logLines.push(m), clock: () => clockMs });
  server = s;
  await s.start();
  return s;
}

async function connect(): Promise<RawNbdClient> {
  const c = await RawNbdClient.connect(socketPath);
  clients.push(c);
  return c;
}

/** Polls `condition` every few milliseconds until it holds (the test's timeout bounds the wait). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A gate the device waits on until the test opens it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe('NBD server: clients that hang up', () => {
  it('drops the queued requests of a client that hangs up (only the ones already in the device run)', async () => {
    const g = gate();
    const dev = new MemoryDevice({ name: 'disk1', capacity: 4 * MiB, gate: (op) => (op === 'read' ? g.wait : undefined) });
    const s = await serve(staticExports([dev]), { maxInFlight: 16 });
    const c = await connect();
    await c.goTo('disk1');
    for (let i = 0; i < 2000; i++) c.sendRequest(CMD_READ, { cookie: BigInt(i), offset: BigInt((i % 64) * 64 * KiB), length: 64 * KiB });
    await until(() => dev.active === 16);
    c.close();
    await until(() => s.stats().finishing === 1); // the server has seen the hang-up
    expect(s.stats()).toMatchObject({ connections: 1, requests: 16 });
    g.open();
    await until(() => s.stats().connections === 0);
    expect(dev.log.filter((e) => e.op === 'read').length).toBe(16);
    expect(s.stats()).toMatchObject({ requests: 0, heldBytes: 0, sharedBytesInUse: 0 });
  });

  it('gives up the shared budget wait of a client that hangs up', async () => {
    const g = gate();
    const dev = new MemoryDevice({ name: 'disk1', capacity: 8 * MiB, gate: (op) => (op === 'read' ? g.wait : undefined) });
    // readAheadBytes lifted: one connection's READs reach the shared budget.
    const s = await serve(staticExports([dev]), { sharedBytes: 4 * MiB, reserveBytes: 1 * MiB, readAheadBytes: 64 * MiB });
    const c = await connect();
    await c.goTo('disk1');
    for (let i = 0; i < 100; i++) c.sendRequest(CMD_READ, { cookie: BigInt(i), offset: BigInt((i % 8) * MiB), length: MiB });
    // One request on the reserve, four on the shared budget, the next one waiting for bytes.
    await until(() => dev.active === 5 && s.stats().waitingForBytes === 1);
    c.close();
    await until(() => s.stats().waitingForBytes === 0);
    g.open();
    await until(() => s.stats().connections === 0);
    expect(dev.log.length).toBe(5);
    expect(s.stats().sharedBytesInUse).toBe(0);
  });
});

describe('NBD server: memory bounds and fairness', () => {
  it('holds at most the shared budget of READ replies for a client that does not read them, and sends them all once it reads', async () => {
    const dev = new MemoryDevice({ name: 'disk1', capacity: 16 * MiB });
    for (let i = 0; i < dev.capacity; i += 512) dev.data.writeUInt32BE(i, i);
    const s = await serve(staticExports([dev]), { sharedBytes: 8 * MiB, reserveBytes: 1 * MiB, maxInFlightBytes: 64 * MiB, readAheadBytes: 64 * MiB });
    const slow = await connect();
    await slow.goTo('disk1');
    slow.socket.pause(); // reads nothing for now
    for (let i = 0; i < 100; i++) slow.sendRequest(CMD_READ, { cookie: BigInt(i), offset: BigInt((i % 16) * MiB), length: MiB });
    await until(() => s.stats().sharedBytesInUse >= 8 * MiB);
    await sleep(100);
    // 8 MiB shared + 1 MiB reserve held; the sockets' kernel buffers hold less than one more reply.
    expect(dev.log.length).toBeLessThanOrEqual(10);
    expect(s.stats().heldBytes).toBeLessThanOrEqual(9 * MiB);

    // Another client is served meanwhile: its 4 KiB reads run on its own reserve.
    const good = await connect();
    await good.goTo('disk1');
    for (let i = 0; i < 20; i++) {
      good.sendRequest(CMD_READ, { cookie: BigInt(i), offset: BigInt(i * 4096), length: 4096 });
      const reply = await good.readReply(4096);
      expect(reply).toMatchObject({ error: 0, cookie: BigInt(i) });
      expect(reply.data.readUInt32BE(0)).toBe(i * 4096);
    }

    slow.socket.resume();
    const seen = new Set<bigint>();
    for (let i = 0; i < 100; i++) {
      const reply = await slow.readReply(MiB);
      expect(reply.error).toBe(0);
      expect(reply.data.readUInt32BE(512)).toBe(Number((reply.cookie % 16n) * BigInt(MiB)) + 512);
      seen.add(reply.cookie);
    }
    expect(seen.size).toBe(100);
    await until(() => s.stats().heldBytes === 0);
    expect(s.stats().sharedBytesInUse).toBe(0);
  });

  it('starts no READ while a connection holds readAheadBytes of reads and unsent replies, and serves the rest as they leave', async () => {
    const g = gate();
    const dev = new MemoryDevice({ name: 'disk1', capacity: 16 * MiB, gate: (op) => (op === 'read' ? g.wait : undefined) });
    for (let i = 0; i < dev.capacity; i += 512) dev.data.writeUInt32BE(i, i);
    const s = await serve(staticExports([dev]), { readAheadBytes: 3 * MiB, sharedBytes: 64 * MiB });
    const c = await connect();
    await c.goTo('disk1');
    for (let i = 0; i < 40; i++) c.sendRequest(CMD_READ, { cookie: BigInt(i), offset: BigInt((i % 16) * MiB), length: MiB });
    await until(() => dev.active === 3);
    await sleep(100);
    // Three 1 MiB reads reach 3 MiB: the fourth waits, though budget and maxInFlight would allow it.
    expect(dev.active).toBe(3);
    expect(s.stats().heldBytes).toBe(3 * MiB);
    g.open();
    const seen = new Set<bigint>();
    for (let i = 0; i < 40; i++) {
      const reply = await c.readReply(MiB);
      expect(reply.error).toBe(0);
      expect(reply.data.readUInt32BE(512)).toBe(Number((reply.cookie % 16n) * BigInt(MiB)) + 512);
      seen.add(reply.cookie);
    }
    expect(seen.size).toBe(40);
    await until(() => s.stats().heldBytes === 0);
  });

  it('always lets two READs run, however large, so a read is in the device while the previous reply is sent', async () => {
    const g = gate();
    const dev = new MemoryDevice({ name: 'disk1', capacity: 32 * MiB, gate: (op) => (op === 'read' ? g.wait : undefined) });
    await serve(staticExports([dev]), { readAheadBytes: MiB, sharedBytes: 64 * MiB });
    const c = await connect();
    await c.goTo('disk1');
    for (let i = 0; i < 4; i++) c.sendRequest(CMD_READ, { cookie: BigInt(i), offset: BigInt(i * 8 * MiB), length: 8 * MiB });
    await until(() => dev.active === 2);
    await sleep(100);
    expect(dev.active).toBe(2);
    g.open();
    for (let i = 0; i < 4; i++) expect((await c.readReply(8 * MiB)).error).toBe(0);
  });

  it('answers a refused huge READ at once, without waiting for the shared budget others hold', async () => {
    const g = gate();
    const dev = new MemoryDevice({ name: 'disk1', capacity: 8 * MiB, gate: (op, _offset, length) => (op === 'read' && length === MiB ? g.wait : undefined) });
    const s = await serve(staticExports([dev]), { sharedBytes: 4 * MiB, reserveBytes: MiB, readAheadBytes: 64 * MiB });
    const greedy = await connect();
    await greedy.goTo('disk1');
    for (let i = 0; i < 8; i++) greedy.sendRequest(CMD_READ, { cookie: BigInt(i), offset: BigInt(i * MiB), length: MiB });
    await until(() => s.stats().sharedBytesInUse === 4 * MiB && s.stats().waitingForBytes === 1);

    const other = await connect();
    await other.goTo('disk1');
    other.sendRequest(CMD_READ, { cookie: 1n, offset: 0n, length: 0xffffffff });
    other.sendRequest(CMD_READ, { cookie: 2n, offset: BigInt(8 * MiB), length: 32 * MiB });
    expect(await other.readReply()).toMatchObject({ cookie: 1n, error: EINVAL });
    expect(await other.readReply()).toMatchObject({ cookie: 2n, error: EINVAL });
    expect(s.stats().sharedBytesInUse).toBe(4 * MiB);
    g.open();
  });

  it('stops reading the options of a client that does not read the replies (handshake backpressure)', async () => {
    const devices = Array.from({ length: 8 }, (_, i) => new MemoryDevice({ name: `disk${i}`, capacity: MiB }));
    const descriptions = Object.fromEntries(devices.map((d) => [d.name, 'd'.repeat(4000)]));
    const inner = staticExports(devices, descriptions);
    let listed = 0;
    await serve({ list: () => (listed++, inner.list()), open: (name) => inner.open(name) });
    const c = await connect();
    await c.greet();
    c.socket.pause();
    for (let i = 0; i < 2000; i++) c.sendOption(OPT_LIST);
    await until(() => listed > 0);
    await sleep(300);
    // Each reply is ~32 KiB; the server stops once 64 KiB wait in its socket (plus the kernel's buffers).
    expect(listed).toBeLessThan(100);
    c.socket.resume();
    for (let i = 0; i < 2000; i++) {
      const replies = await c.readOptionReplies();
      expect(replies.at(-1)?.type).toBe(REP_ACK);
      expect(replies.length).toBe(9);
    }
    expect(listed).toBe(2000);
  });

  it('refuses the 65th connection when 64 are open, and accepts again once one leaves', async () => {
    const dev = new MemoryDevice({ name: 'disk1', capacity: MiB });
    const s = await serve(staticExports([dev]), { maxConnections: 64 });
    const open: RawNbdClient[] = [];
    for (let i = 0; i < 64; i++) {
      const c = await connect();
      await c.greet();
      open.push(c);
    }
    const extra = await connect();
    await extra.closed; // closed by the server without a greeting
    expect(extra.reader.available).toBe(0);
    expect(s.stats()).toMatchObject({ connections: 64, refusedConnections: 1 });
    expect(logLines.some((l) => /refused: 64 connections are open \(the limit\)/.test(l))).toBe(true);

    open[0]?.close();
    await until(() => s.stats().connections === 63);
    const again = await connect();
    await again.goTo('disk1');
    again.sendRequest(CMD_READ, { length: 512 });
    expect((await again.readReply(512)).error).toBe(0);
  });
});

describe('NBD server: refused requests are logged, rate-limited', () => {
  it('logs each refused request with its reason, at most 5 lines a second per connection, then how many it held back', async () => {
    const dev = new MemoryDevice({ name: 'disk1', capacity: MiB });
    await serve(staticExports([dev]));
    const c = await connect();
    await c.goTo('disk1');
    for (let i = 0; i < 100; i++) c.sendRequest(CMD_READ, { cookie: BigInt(i), offset: BigInt(MiB), length: 512 });
    for (let i = 0; i < 100; i++) expect((await c.readReply()).error).toBe(EINVAL);
    const refusedLines = logLines.filter((l) => l.includes('refused'));
    expect(refusedLines).toHaveLength(5);
    expect(refusedLines[0]).toMatch(/^nbd\[\d+\] "disk1": refused READ of 512 bytes at offset 1048576: past the end of the export \(1048576 bytes\)$/);
    c.close();
    await until(() => logLines.some((l) => l.includes('suppressed')));
    expect(logLines.find((l) => l.includes('suppressed'))).toMatch(/^nbd\[\d+\]: 95 more messages suppressed/);
  });

  it('writes at most 20 lines a second for the whole server, however many connections misbehave', async () => {
    const dev = new MemoryDevice({ name: 'disk1', capacity: MiB });
    await serve(staticExports([dev]));
    const bad = await Promise.all(Array.from({ length: 10 }, () => connect()));
    await Promise.all(bad.map((c) => c.goTo('disk1')));
    for (const c of bad) for (let i = 0; i < 10; i++) c.sendRequest(99, { cookie: BigInt(i), length: 512 });
    for (const c of bad) for (let i = 0; i < 10; i++) expect((await c.readReply()).error).toBe(EINVAL);
    const refusedLines = logLines.filter((l) => l.includes('refused'));
    expect(refusedLines.length).toBe(20);
    expect(refusedLines.every((l) => l.includes('command 99') && l.includes('unknown or unsupported command'))).toBe(true);
    // A second later the server sums up what it held back: 30 more lines (10 connections × 5, less 20).
    clockMs += 1000;
    for (const c of bad) c.close();
    await until(() => logLines.some((l) => l.startsWith('nbd: ')));
    expect(logLines.find((l) => l.startsWith('nbd: '))).toBe('nbd: 30 more messages suppressed (at most 20 a second)');
  });
});

describe('NBD server: a connection refused at once', () => {
  it('closes a refused connection before sending anything', async () => {
    await serve(staticExports([new MemoryDevice({ name: 'disk1', capacity: MiB })]), { maxConnections: 0 });
    const socket = createConnection(socketPath);
    const received: Buffer[] = [];
    socket.on('data', (b: Buffer) => received.push(b));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    expect(Buffer.concat(received).length).toBe(0);
  });
});
