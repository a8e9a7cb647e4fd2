/**
 * NBD abuse bench (issue 7): what misbehaving clients cost the server, which
 * runs in its own process (test/bench/nbd-abuse-server.ts, default limits, an
 * embedded-engine device on a 256 MiB file).
 *   (a) a client pipelines 20,000 READs of 32 MiB and hangs up: time from the
 *       hang-up to a server with no connection and no request left, and how
 *       many of the 20,000 reads the device saw (median and worst of 5 runs);
 *   (b) 64 slow readers (each pipelines 16 READs of 32 MiB and reads 64 KiB of
 *       its socket every 100 ms) for 8 s: the server's peak RSS, and its RSS
 *       once they have left;
 *   (c) meanwhile a well-behaved client reads 4 KiB blocks one at a time: its
 *       median, p99 and worst latency, against the same client on an idle server.
 * Prints a table and writes bench-results/nbd-abuse.json.
 * Run: npm run bench:nbd-abuse   (about 40 s)
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RawNbdClient } from '../helpers/nbd-raw-client.js';
import { seededRandom } from '../helpers/seeded-random.js';

const MiB = 1024 * 1024;
const HANGUP_REQUESTS = 20_000;
const HANGUP_RUNS = 5;
const SLOW_READERS = 64;
const SLOW_READS_EACH = 16;
const SLOW_SECONDS = 8;
const BIG = 32 * MiB;
const CMD_READ = 0;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const loadNow = (): number[] => loadavg().map((l) => Math.round(l * 100) / 100);
const ms = (ns: bigint): number => Number(ns) / 1e6;

interface Stats {
  connections: number;
  requests: number;
  heldBytes: number;
  sharedBytesInUse: number;
  reads: number;
  rss: number;
  peakRss: number;
}

/** The server process and its line protocol. */
async function startServer(dir: string): Promise<{ ask: <T>(command: string) => Promise<T>; socket: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(new URL('nbd-abuse-server.ts', import.meta.url)), dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  const answers: ((line: string) => void)[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => answers.shift()?.(line));
  const ask = <T>(command: string): Promise<T> =>
    new Promise<T>((resolve) => {
      answers.push((line) => resolve(JSON.parse(line) as T));
      child.stdin.write(`${command}\n`);
    });
  await ask<Stats>('stats'); // answers once the server listens
  return {
    ask,
    socket: join(dir, 'nbd.sock'),
    stop: async () => {
      await ask('quit');
      child.stdin.end();
    },
  };
}

async function waitFor(ask: <T>(c: string) => Promise<T>, condition: (s: Stats) => boolean): Promise<Stats> {
  for (;;) {
    const s = await ask<Stats>('stats');
    if (condition(s)) return s;
    await sleep(5);
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** One client reading 4 KiB blocks one at a time until `stop()`; latencies in ms. */
async function latencyProbe(socket: string, stop: () => boolean): Promise<number[]> {
  const c = await RawNbdClient.connect(socket);
  await c.goTo('disk1');
  const r = seededRandom(42);
  const latencies: number[] = [];
  let cookie = 0n;
  while (!stop()) {
    const start = process.hrtime.bigint();
    c.sendRequest(CMD_READ, { cookie: ++cookie, offset: BigInt(Math.floor(r() * 65536) * 4096), length: 4096 });
    const reply = await c.readReply(4096);
    if (reply.error !== 0) throw new Error(`4 KiB read failed with error ${reply.error}`);
    latencies.push(ms(process.hrtime.bigint() - start));
    await sleep(2);
  }
  c.close();
  return latencies.sort((a, b) => a - b);
}

/** A client that pipelines big reads and reads its socket very slowly. */
async function slowReader(socket: string, index: number): Promise<RawNbdClient> {
  const c = await RawNbdClient.connect(socket);
  await c.goTo('disk1');
  for (let i = 0; i < SLOW_READS_EACH; i++) {
    c.sendRequest(CMD_READ, { cookie: BigInt(i), offset: BigInt(((index + i) % 8) * BIG), length: BIG });
  }
  // One chunk (at most 64 KiB) every 100 ms, dropped.
  c.socket.removeAllListeners('data');
  c.socket.on('data', () => c.socket.pause());
  c.socket.pause();
  const tick = setInterval(() => {
    if (c.hasClosed) return clearInterval(tick);
    c.socket.resume();
  }, 100);
  void c.closed.then(() => clearInterval(tick));
  return c;
}

async function main(): Promise<void> {
  const started = Date.now();
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', totalMemBytes: totalmem(), loadAverageAtStart: loadNow(), loadAverageAtEnd: [] as number[] };
  const dir = await mkdtemp(join(tmpdir(), 'nbd-abuse-'));
  const server = await startServer(dir);
  const { ask } = server;
  try {
    // (a) hang-up with 20,000 pipelined 32 MiB READs
    const hangups: { ms: number; readsServed: number; readsAfterHangUp: number }[] = [];
    for (let run = 0; run < HANGUP_RUNS; run++) {
      const before = await ask<Stats>('stats');
      const c = await RawNbdClient.connect(server.socket);
      await c.goTo('disk1');
      const frames = Buffer.alloc(28 * HANGUP_REQUESTS);
      for (let i = 0; i < HANGUP_REQUESTS; i++) {
        const f = frames.subarray(28 * i, 28 * (i + 1));
        f.writeUInt32BE(0x25609513, 0);
        f.writeUInt16BE(CMD_READ, 6);
        f.writeBigUInt64BE(BigInt(i), 8);
        f.writeBigUInt64BE(BigInt((i % 8) * BIG), 16);
        f.writeUInt32BE(BIG, 24);
      }
      c.socket.removeAllListeners('data');
      c.socket.on('data', () => undefined);
      c.socket.resume();
      c.socket.write(frames);
      // The client reads (and drops) its replies, so the server keeps serving until the hang-up.
      const busy = await waitFor(ask, (s) => s.reads >= before.reads + 8);
      const hangUpAt = process.hrtime.bigint();
      c.socket.destroy();
      const idle = await ask<{ idleAt: string; reads: number }>('wait-idle');
      hangups.push({ ms: ms(BigInt(idle.idleAt) - hangUpAt), readsServed: idle.reads - before.reads, readsAfterHangUp: idle.reads - busy.reads });
    }
    const hangupMs = hangups.map((h) => h.ms).sort((a, b) => a - b);

    // (c) baseline: the well-behaved client alone
    let stopProbe = false;
    const baselineRun = latencyProbe(server.socket, () => stopProbe);
    await sleep(3000);
    stopProbe = true;
    const baseline = await baselineRun;

    // (b) 64 slow readers, with (c) the well-behaved client meanwhile
    await ask('reset-peak');
    const idleRss = (await ask<Stats>('stats')).rss;
    const slow = await Promise.all(Array.from({ length: SLOW_READERS }, (_, i) => slowReader(server.socket, i)));
    stopProbe = false;
    const abusedRun = latencyProbe(server.socket, () => stopProbe);
    let sampledPeak = 0;
    let held = 0;
    const until = Date.now() + SLOW_SECONDS * 1000;
    while (Date.now() < until) {
      const s = await ask<Stats>('stats');
      sampledPeak = Math.max(sampledPeak, s.rss);
      held = Math.max(held, s.heldBytes);
      await sleep(100);
    }
    stopProbe = true;
    const abused = await abusedRun;
    const during = await ask<Stats>('stats');
    for (const c of slow) c.close();
    const afterLeaving = await ask<{ idleAt: string; reads: number }>('wait-idle');
    const leftPeak = (await ask<Stats>('stats')).peakRss;
    await sleep(1000);
    const after = await ask<Stats>('stats');
    await ask('gc');
    const afterGc = await ask<Stats>('stats');
    machine.loadAverageAtEnd = loadNow();

    const row = (what: string, value: string, target: string): string[] => [what, value, target];
    const lat = (l: number[]): string => `p50 ${percentile(l, 50).toFixed(2)}, p99 ${percentile(l, 99).toFixed(2)}, worst ${(l.at(-1) ?? Number.NaN).toFixed(2)} ms (${l.length} reads)`;
    const rows = [
      row(`(a) hang-up with ${HANGUP_REQUESTS} pipelined 32 MiB READs -> idle`, `median ${percentile(hangupMs, 50).toFixed(1)} ms, worst ${(hangupMs.at(-1) ?? 0).toFixed(1)} ms`, '< 1 s'),
      row('(a) READs the device served after the hang-up', `${Math.max(...hangups.map((h) => h.readsAfterHangUp))} at most (of ${HANGUP_REQUESTS})`, ''),
      row(`(b) server RSS with ${SLOW_READERS} slow readers (peak)`, `${Math.round(Math.max(sampledPeak, during.peakRss) / MiB)} MiB (idle before: ${Math.round(idleRss / MiB)} MiB)`, '< 512 MiB'),
      row('(b) bytes held by all connections (peak sampled)', `${Math.round(held / MiB)} MiB`, ''),
      row('(b) server peak RSS while they hang up', `${Math.round(leftPeak / MiB)} MiB`, '< 512 MiB'),
      row('(b) 32 MiB READs the device served after they hung up', `${afterLeaving.reads - during.reads}`, ''),
      row('(b) server RSS 1 s after they left, and after a GC', `${Math.round(after.rss / MiB)} MiB, ${Math.round(afterGc.rss / MiB)} MiB`, ''),
      row('(c) 4 KiB read latency, idle server', lat(baseline), ''),
      row(`(c) 4 KiB read latency, ${SLOW_READERS} slow readers`, lat(abused), ''),
    ];
    const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
    console.log('NBD abuse bench: server in its own process, default limits, embedded-engine device on a 256 MiB file');
    console.log(`machine: ${machine.cpus} CPU (${machine.cpuModel}), load average at start ${machine.loadAverageAtStart.join(' ')}, at end ${machine.loadAverageAtEnd.join(' ')}`);
    for (const r of [['figure', 'measured', 'target'], ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  '));
    console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);

    await mkdir('bench-results', { recursive: true });
    await writeFile(
      join('bench-results', 'nbd-abuse.json'),
      `${JSON.stringify(
        {
          date: new Date().toISOString(),
          machine,
          hangup: { requests: HANGUP_REQUESTS, requestBytes: BIG, runs: hangups },
          slowReaders: { count: SLOW_READERS, readsEach: SLOW_READS_EACH, seconds: SLOW_SECONDS, idleRssBytes: idleRss, peakRssBytes: Math.max(sampledPeak, during.peakRss), peakHeldBytes: held, peakRssWhileLeavingBytes: leftPeak, readsAfterLeaving: afterLeaving.reads - during.reads, rssAfterBytes: after.rss, rssAfterGcBytes: afterGc.rss },
          latencyMs: {
            idle: { p50: percentile(baseline, 50), p99: percentile(baseline, 99), worst: baseline.at(-1), count: baseline.length },
            slowReaders: { p50: percentile(abused, 50), p99: percentile(abused, 99), worst: abused.at(-1), count: abused.length },
          },
        },
        null,
        2,
      )}\n`,
    );
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
