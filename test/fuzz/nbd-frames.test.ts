/**
 * NBD fuzz suite (issue 7): at least 100,000 random and mutated frames
 * (handshake options and transmission requests) over thousands of
 * connections, while a real qemu-io write-then-verify loop runs on another
 * export. Every reply is checked against an independent model
 * (test/fuzz/nbd-frame-model.ts); the server must stay up, hold nothing once
 * the clients are gone, and keep this process's RSS under RSS_BOUND_MIB.
 *
 * NBD_FUZZ_FRAMES=n changes the number of frames, NBD_FUZZ_SEED=n the seed.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { staticExports } from '../../engine/nbd/export-source.js';
import { NbdServer } from '../../engine/nbd/server.js';
import { hasCommand } from '../helpers/env.js';
import { MemoryDevice } from '../helpers/memory-device.js';
import { RawNbdClient } from '../helpers/nbd-raw-client.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { ERR, REP, randomHandshake, randomTransmission } from './nbd-frame-model.js';
import type { FuzzTarget, HandshakePlan, TransmissionPlan } from './nbd-frame-model.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const FRAMES = Number(process.env.NBD_FUZZ_FRAMES ?? 100_000);
const SEED = Number(process.env.NBD_FUZZ_SEED ?? 0x5eed7);
const WORKERS = 8;
/** Documented in docs/nbd.md: the whole test process (server and fuzzing clients). */
const RSS_BOUND_MIB = 512;
const REPLY_MAGIC = 0x67446698;
const REP_MAGIC = 0x3e889045565a9n;
const CONNECTION_DEADLINE_MS = 20_000;

const target: FuzzTarget = { exportNames: ['fuzz', 'fuzz-ro', 'verify'], capacity: MiB, maxPayload: 32 * MiB, maxOptionLength: 64 * 1024 };
const roContent = Buffer.alloc(MiB);
for (let i = 0; i < MiB; i += 4) roContent.writeUInt32BE((i ^ 0xa5a5a5a5) >>> 0, i);
const fuzzDisk = new MemoryDevice({ name: 'fuzz', capacity: MiB });
const fuzzImage = new MemoryDevice({ name: 'fuzz-ro', capacity: MiB, readOnly: true, content: roContent });
const verifyDisk = new MemoryDevice({ name: 'verify', capacity: 16 * MiB });

let dir: string;
let server: NbdServer;
const logLines: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-fuzz-'));
  server = new NbdServer({
    exports: staticExports([fuzzDisk, fuzzImage, verifyDisk]),
    unixSocket: join(dir, 'nbd.sock'),
    log: (m) => logLines.push(m),
  });
  await server.start();
});

afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

class Mismatch extends Error {}

function check(ok: boolean, what: () => string): void {
  if (!ok) throw new Mismatch(what());
}

/** Reads until the server closes; anything but a clean close is a failure. */
async function expectClose(c: RawNbdClient): Promise<void> {
  await c.closed;
}

async function fuzzHandshake(c: RawNbdClient, plan: HandshakePlan): Promise<number> {
  const greeting = await c.reader.read(18);
  check(greeting.toString('latin1', 0, 8) === 'NBDMAGIC' && greeting.toString('latin1', 8, 16) === 'IHAVEOPT', () => 'bad greeting');
  c.socket.write(plan.stream);
  let answered = 0;
  for (const expected of plan.replies) {
    let final: { option: number; type: number } | null = null;
    try {
      while (final === null) {
        const reply = await c.readOptionReply();
        check(reply.magic === REP_MAGIC, () => `option reply magic 0x${reply.magic.toString(16)}`);
        check(reply.option === expected.option, () => `reply for option ${reply.option}, expected ${expected.option}`);
        if (reply.type === REP.ACK || reply.type >= 0x80000000) final = reply;
        else check(reply.type === REP.SERVER || reply.type === REP.INFO || reply.type === REP.META_CONTEXT, () => `unexpected reply type 0x${reply.type.toString(16)}`);
      }
    } catch (err) {
      // A connection that ends in 'close' may lose replies queued when it dropped.
      if (err instanceof Mismatch || plan.ending !== 'close') throw err;
      return answered;
    }
    check(final.type === expected.final, () => `option ${expected.option}: reply 0x${final?.type.toString(16)}, expected 0x${expected.final.toString(16)}`);
    answered++;
  }
  if (plan.ending === 'close' || plan.ending === 'abort') await expectClose(c);
  return answered;
}

async function fuzzTransmission(c: RawNbdClient, exportName: string, plan: TransmissionPlan): Promise<{ answered: number; errors: number }> {
  await c.goTo(exportName);
  c.socket.write(plan.stream);
  const pending = new Map(plan.replies);
  let answered = 0;
  let errors = 0;
  while (pending.size > 0) {
    let reply;
    try {
      reply = await c.readReply((cookie) => pending.get(cookie)?.dataLength ?? 0);
    } catch (err) {
      if (plan.ending !== 'close') throw err;
      return { answered, errors };
    }
    const { cookie } = reply;
    const expected = pending.get(cookie);
    check(reply.magic === REPLY_MAGIC, () => `reply magic 0x${reply.magic.toString(16)}`);
    check(expected !== undefined, () => `reply for unknown cookie ${cookie}`);
    if (expected === undefined) break;
    check(reply.error === expected.error, () => `cookie ${cookie} (command ${expected.type}): error ${reply.error}, expected ${expected.error}`);
    if (exportName === 'fuzz-ro' && expected.dataLength > 0) {
      check(reply.data.equals(roContent.subarray(expected.offset, expected.offset + expected.dataLength)), () => `wrong data at ${expected.offset}`);
    }
    if (reply.error !== ERR.OK) errors++;
    pending.delete(cookie);
    answered++;
  }
  if (plan.ending === 'close' || plan.ending === 'disc') await expectClose(c);
  return { answered, errors };
}

interface Counts {
  frames: number;
  connections: number;
  handshakes: number;
  replies: number;
  errorReplies: number;
  closedByServer: number;
}

/** Connection n: its frames depend only on (SEED, n), so a failure names what reproduces it. */
async function oneConnection(n: number, counts: Counts): Promise<void> {
  const r = seededRandom((SEED + Math.imul(n, 0x9e3779b1)) >>> 0);
  const c = await RawNbdClient.connect(server.socketPath ?? '');
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`connection ${n} (seed ${SEED}) got stuck`)), CONNECTION_DEADLINE_MS);
  });
  try {
    if (r() < 0.3) {
      const plan = randomHandshake(r, target);
      counts.frames += plan.frames;
      counts.handshakes++;
      const answered = await Promise.race([fuzzHandshake(c, plan), deadline]);
      counts.replies += answered;
      counts.errorReplies += plan.replies.slice(0, answered).filter((x) => x.final >= 0x80000000).length;
      if (plan.ending === 'close') counts.closedByServer++;
    } else {
      const readOnly = r() < 0.4;
      const plan = randomTransmission(r, target, readOnly);
      counts.frames += plan.frames;
      const { answered, errors } = await Promise.race([fuzzTransmission(c, readOnly ? 'fuzz-ro' : 'fuzz', plan), deadline]);
      counts.replies += answered;
      counts.errorReplies += errors;
      if (plan.ending === 'close') counts.closedByServer++;
    }
    counts.connections++;
  } catch (err) {
    throw new Error(`connection ${n} (NBD_FUZZ_SEED=${SEED}): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
    c.close();
  }
}

/** qemu-io writes a pattern and reads it back (read -P) on the verify export until told to stop. */
async function qemuVerifyLoop(stop: () => boolean): Promise<number> {
  const uri = server.uriFor('verify');
  const r = seededRandom(SEED ^ 0x9e37);
  let rounds = 0;
  while (!stop() || rounds === 0) {
    const offset = Math.floor(r() * 4000) * 4096;
    const length = (1 + Math.floor(r() * 16)) * 4096;
    const byte = `0x${(1 + Math.floor(r() * 254)).toString(16)}`;
    const { stdout } = await run('qemu-io', ['-f', 'raw', '-c', `write -P ${byte} ${offset} ${length}`, '-c', `read -P ${byte} ${offset} ${length}`, uri]);
    if (/fail|error/i.test(stdout) || (stdout.match(/^read /gm) ?? []).length !== 1) throw new Error(`qemu-io round ${rounds}: ${stdout}`);
    rounds++;
    await new Promise((resolve) => setTimeout(resolve, 50)); // leave the CPUs to the fuzzing
  }
  return rounds;
}

describe('NBD fuzz: random and mutated frames', () => {
  it.skipIf(!hasCommand('qemu-io'))(
    `[qemu-io] ${FRAMES} frames over thousands of connections get the answers the protocol defines, while a qemu-io verify loop passes and RSS stays under ${RSS_BOUND_MIB} MiB`,
    async () => {
      const counts: Counts = { frames: 0, connections: 0, handshakes: 0, replies: 0, errorReplies: 0, closedByServer: 0 };
      let peakRss = process.memoryUsage().rss;
      const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
      const started = Date.now();
      let fuzzing = true;
      const qemu = qemuVerifyLoop(() => !fuzzing);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (counts.frames < FRAMES) await oneConnection(next++, counts);
      };
      try {
        await Promise.all(Array.from({ length: WORKERS }, () => worker()));
      } finally {
        fuzzing = false;
      }
      const qemuRounds = await qemu;
      clearInterval(sampler);

      // Still up, holding nothing, and serving a fresh client.
      while (server.stats().connections > 0) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(server.stats()).toMatchObject({ connections: 0, requests: 0, heldBytes: 0, sharedBytesInUse: 0, waitingForBytes: 0 });
      const fresh = await RawNbdClient.connect(server.socketPath ?? '');
      await fresh.goTo('fuzz-ro');
      fresh.sendRequest(0, { cookie: 9n, offset: 4096n, length: 4096 });
      const reply = await fresh.readReply(4096);
      fresh.close();
      expect(reply.data.equals(roContent.subarray(4096, 8192))).toBe(true);

      const refusedLogged = logLines.filter((l) => l.includes('refused')).length;
      const summaries = logLines.filter((l) => l.includes('suppressed')).length;
      const peakMiB = Math.round(peakRss / MiB);
      console.log(
        `nbd fuzz (seed ${SEED}): ${counts.frames} frames, ${counts.connections} connections (${counts.handshakes} handshake-only, ` +
          `${counts.closedByServer} dropped by the server), ${counts.replies} replies checked, ${counts.errorReplies} of them errors, ` +
          `${qemuRounds} qemu-io verify rounds, ${refusedLogged} refusal log lines + ${summaries} suppression summaries, ` +
          `peak RSS ${peakMiB} MiB, ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      expect(counts.frames).toBeGreaterThanOrEqual(FRAMES);
      expect(counts.connections).toBeGreaterThan(FRAMES / 100);
      expect(qemuRounds).toBeGreaterThan(0);
      expect(refusedLogged).toBeGreaterThan(0);
      expect(peakMiB).toBeLessThan(RSS_BOUND_MIB);
    },
    180_000,
  );
});
