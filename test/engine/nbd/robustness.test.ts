/**
 * Property tests of the transmission phase: pipelined writes and reads with
 * random device latencies agree with a model, and arbitrary garbage from one
 * client never takes the server down for the others.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { staticExports } from '../../../engine/nbd/export-source.js';
import { NbdServer } from '../../../engine/nbd/server.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { RawNbdClient } from '../../helpers/nbd-raw-client.js';

const SLOT = 64 * 1024;
const SLOTS = 32;
let dir: string;
let server: NbdServer;
let delays = new Map<number, number>();
const dev = new MemoryDevice({ name: 'disk1', capacity: SLOT * SLOTS, delayMs: (_op, offset) => delays.get(offset) ?? 0 });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-robustness-'));
  server = new NbdServer({ exports: staticExports([dev]), unixSocket: join(dir, 'nbd.sock') });
  await server.start();
});

afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

async function connect(): Promise<RawNbdClient> {
  const c = await RawNbdClient.connect(join(dir, 'nbd.sock'));
  await c.goTo('disk1');
  return c;
}

describe('NBD transmission properties', () => {
  it('pipelined writes then reads, completed in random order, match the model', async () => {
    const op = fc.record({
      slot: fc.integer({ min: 0, max: SLOTS - 1 }),
      sectors: fc.integer({ min: 1, max: SLOT / 512 }),
      fill: fc.integer({ min: 1, max: 255 }),
      delay: fc.integer({ min: 0, max: 4 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(op, { minLength: 1, maxLength: 12, selector: (o) => o.slot }), async (ops) => {
        dev.data.fill(0);
        delays = new Map(ops.map((o) => [o.slot * SLOT, o.delay]));
        const model = Buffer.alloc(dev.capacity);
        const c = await connect();
        try {
          ops.forEach((o, i) => {
            const payload = Buffer.alloc(o.sectors * 512, o.fill);
            payload.copy(model, o.slot * SLOT);
            c.sendRequest(1, { cookie: BigInt(i), offset: BigInt(o.slot * SLOT), length: payload.length, payload });
          });
          const written = new Set<bigint>();
          for (let i = 0; i < ops.length; i++) {
            const reply = await c.readReply();
            expect(reply.error).toBe(0);
            written.add(reply.cookie);
          }
          expect(written.size).toBe(ops.length);
          for (let s = 0; s < SLOTS; s++) c.sendRequest(0, { cookie: BigInt(1000 + s), offset: BigInt(s * SLOT), length: SLOT });
          for (let s = 0; s < SLOTS; s++) {
            const reply = await c.readReply(SLOT);
            const slot = Number(reply.cookie) - 1000;
            expect(reply.data.equals(model.subarray(slot * SLOT, (slot + 1) * SLOT))).toBe(true);
          }
        } finally {
          c.close();
          delays = new Map();
        }
      }),
      { numRuns: 25 },
    );
  });

  it('survives arbitrary bytes in the handshake and in transmission', async () => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.uint8Array({ minLength: 1, maxLength: 300 }), async (afterGo, garbage) => {
        const c = await RawNbdClient.connect(join(dir, 'nbd.sock'));
        try {
          if (afterGo) await c.goTo('disk1');
          c.socket.write(garbage);
          await new Promise((r) => setTimeout(r, 5));
        } finally {
          c.close();
        }
      }),
      { numRuns: 60 },
    );
    // The server still serves, and the garbage connections are gone.
    const good = await connect();
    good.sendRequest(0, { cookie: 1n, offset: 0n, length: 512 });
    expect((await good.readReply(512)).error).toBe(0);
    good.close();
    await good.closed;
    const deadline = Date.now() + 2000;
    while (server.listConnections().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(server.listConnections()).toEqual([]);
  });
});
