/**
 * Fuzzes a real helper daemon (embedded engine, temporary state directory) with
 * mutated helper-protocol lines over many connections, while a well-behaved client
 * keeps calling hello and devices.list. The helper must answer every line that is not
 * blank with one well-formed message, refuse every line it cannot accept with a clear
 * error (never an "internal" one), stay up, and keep its peak RSS (VmHWM) within
 * PEAK_RSS_BOUND_MIB. FUZZ_SEED=N reproduces a run; FUZZ_LINES=N changes its size.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HelperClient } from '../../engine/protocol/client.js';
import { ErrorBodySchema } from '../../engine/protocol/messages.js';
import { MAX_LINE_LENGTH } from '../../engine/protocol/limits.js';
import { connectClient, spawnDaemon } from '../engine/helper/spawn-daemon.js';
import type { SpawnedDaemon } from '../engine/helper/spawn-daemon.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { LineGenerator, classify, isSafe, templates } from './helper-protocol-lines.js';
import { methods } from '../../engine/protocol/methods.js';
import type { FuzzLine } from './helper-protocol-lines.js';

const LINES = Number(process.env.FUZZ_LINES ?? 30_000);
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_202);
/** Documented in docs/helper.md: the daemon's peak RSS under this fuzz run. */
const PEAK_RSS_BOUND_MIB = 256;
const WORKERS = 4;
const LINES_PER_CONNECTION = 250;
const BATCH = 25;
/** A line of about this many bytes every LONG_EVERY lines (under the line limit). */
const LONG_EVERY = 1000;

interface Tally {
  sent: number;
  blank: number;
  responses: number;
  errors: number;
  results: number;
  notifications: number;
  connections: number;
  codes: Record<string, number>;
  /** Problems: a result for a line the helper must refuse, an internal error, a malformed answer. */
  problems: string[];
}

function preview(bytes: Buffer): string {
  const text = JSON.stringify(bytes.toString('utf8'));
  return text.length > 300 ? `${text.slice(0, 300)}... (${bytes.length} bytes)` : text;
}

/** One fuzzing connection: sends batches of lines and waits for one answer to each. */
class FuzzConnection {
  private buffer = '';
  private answered = 0;
  private expected = 0;
  private wake: (() => void) | null = null;
  private readonly byId = new Map<unknown, FuzzLine>();
  /** Ids used by more than one line of the batch: their answers cannot be told apart. */
  private readonly ambiguous = new Set<unknown>();
  closed = false;
  private readonly recent: string[] = [];
  private ending = 'closed';

  private constructor(
    private readonly socket: Socket,
    private readonly tally: Tally,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        this.receive(this.buffer.slice(0, nl));
        this.buffer = this.buffer.slice(nl + 1);
      }
      this.wake?.();
    });
    socket.on('error', (err) => (this.ending = `error ${err.message}`));
    socket.on('end', () => (this.ending = 'ended by the helper'));
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  static open(path: string, tally: Tally): Promise<FuzzConnection> {
    return new Promise((resolve, reject) => {
      const s = connect(path);
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        tally.connections++;
        resolve(new FuzzConnection(s, tally));
      });
    });
  }

  private receive(text: string): void {
    this.recent.push(text.slice(0, 300));
    if (this.recent.length > 3) this.recent.shift();
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(text) as Record<string, unknown>;
    } catch {
      this.tally.problems.push(`the helper sent invalid JSON: ${text.slice(0, 200)}`);
      return;
    }
    if (!('id' in message)) {
      this.tally.notifications++;
      return;
    }
    this.answered++;
    this.tally.responses++;
    const line = this.byId.get(message.id);
    if ('error' in message) {
      this.tally.errors++;
      const body = ErrorBodySchema.safeParse(message.error);
      if (!body.success || body.data.message.length === 0 || body.data.errno === undefined) {
        this.tally.problems.push(`unclear error ${text.slice(0, 300)}`);
        return;
      }
      const key = body.data.code === 'errno' ? body.data.errno : body.data.code;
      this.tally.codes[key] = (this.tally.codes[key] ?? 0) + 1;
      if (body.data.code === 'internal') this.tally.problems.push(`internal error ${text.slice(0, 300)} for ${line ? preview(line.bytes) : 'a line without id'}`);
    } else if ('result' in message) {
      this.tally.results++;
      if (!line) {
        if (!this.ambiguous.has(message.id)) this.tally.problems.push(`a result for an id the fuzzer did not send: ${text.slice(0, 200)}`);
      }
      else if (!line.acceptable) this.tally.problems.push(`a result for a line the helper must refuse: ${preview(line.bytes)}`);
    } else {
      this.tally.problems.push(`neither result nor error: ${text.slice(0, 200)}`);
    }
  }

  /** Sends the lines (one write) and waits until each line that is not blank has its answer. */
  async exchange(lines: FuzzLine[], timeoutMs = 20_000): Promise<void> {
    const ids = new Map<unknown, number>();
    for (const line of lines) {
      this.tally.sent++;
      if (line.blank) this.tally.blank++;
      else this.expected++;
      if (line.id !== null) {
        ids.set(line.id, (ids.get(line.id) ?? 0) + 1);
        this.byId.set(line.id, line);
      }
    }
    // an id used twice in a batch cannot tell its answers apart
    for (const [id, count] of ids) {
      if (count > 1) {
        this.byId.delete(id);
        this.ambiguous.add(id);
      }
    }
    const parts: Buffer[] = [];
    for (const line of lines) parts.push(line.bytes, Buffer.from('\n'));
    this.socket.write(Buffer.concat(parts));
    const deadline = Date.now() + timeoutMs;
    while (this.answered < this.expected) {
      if (this.closed) throw new Error(`the helper closed a connection (${this.ending}) with ${this.expected - this.answered} lines unanswered; last answers: ${this.recent.join(' | ')}; last batch: ${lines.map((l) => preview(l.bytes)).join('\n')}`);
      if (Date.now() > deadline) throw new Error(`no answer to ${this.expected - this.answered} lines within ${timeoutMs} ms; last batch: ${lines.map((l) => preview(l.bytes)).join('\n')}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    this.byId.clear();
    this.ambiguous.clear();
  }

  /** A line past the limit: one too_large error, then the helper hangs up. */
  async oversized(withNewline: boolean): Promise<unknown> {
    this.tally.sent++;
    const before = this.tally.codes.too_large ?? 0;
    this.socket.write(Buffer.concat([Buffer.alloc(MAX_LINE_LENGTH + 4096, 'z'), Buffer.from(withNewline ? '\n' : '')]));
    const deadline = Date.now() + 20_000;
    while (!this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    return { closed: this.closed, tooLarge: (this.tally.codes.too_large ?? 0) - before };
  }

  close(): void {
    this.socket.destroy();
  }
}

function vmKiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}

describe('helper protocol fuzz', () => {
  let d: SpawnedDaemon;
  let good: HelperClient;
  let fuzzDir: string;

  beforeAll(async () => {
    d = await spawnDaemon();
    good = await connectClient(d.socketPath);
    fuzzDir = join(d.dir, 'fuzz');
    mkdirSync(fuzzDir);
    await good.call('images.create', { path: join(d.dir, 'disk1.img'), size: 16 << 20, name: 'disk1' });
    await good.call('subscribe', {});
  });

  afterAll(async () => {
    good?.close();
    await d?.cleanup();
  });

  it(`answers ${LINES} mutated and random lines with clear errors, stays up, serves a well-behaved client meanwhile, within ${PEAK_RSS_BOUND_MIB} MiB peak RSS`, async () => {
    const pid = d.proc.pid as number;
    const startRss = vmKiB(pid, 'VmRSS');
    const generator = new LineGenerator({ root: d.dir, dir: fuzzDir, device: 'disk1' }, seededRandom(SEED));
    const tally: Tally = { sent: 0, blank: 0, responses: 0, errors: 0, results: 0, notifications: 0, connections: 0, codes: {}, problems: [] };
    const started = Date.now();

    let stop = false;
    const observer = (async () => {
      let calls = 0;
      let worstMs = 0;
      while (!stop) {
        const t0 = performance.now();
        const hello = await good.call('hello', { protocolVersion: 1, client: 'fuzz-observer' }, { timeoutMs: 15_000 });
        const list = await good.call('devices.list', {}, { timeoutMs: 15_000 });
        worstMs = Math.max(worstMs, performance.now() - t0);
        expect(hello.driver).toBe('embedded');
        expect(list.devices.map((dev) => dev.name)).toContain('disk1');
        calls += 2;
        await new Promise((r) => setTimeout(r, 20));
      }
      return { calls, worstMs };
    })();
    observer.catch(() => undefined); // awaited below; a failure must not go unhandled if the fuzz fails first

    let generated = 0;
    const worker = async (): Promise<void> => {
      while (generated < LINES) {
        const conn = await FuzzConnection.open(d.socketPath, tally);
        try {
          for (let i = 0; i < LINES_PER_CONNECTION && generated < LINES; i += BATCH) {
            const batch: FuzzLine[] = [];
            for (let j = 0; j < BATCH && generated < LINES; j++, generated++) {
              batch.push(generated % LONG_EVERY === LONG_EVERY - 1 ? generator.long(100_000 + ((generated * 7919) % 900_000)) : generator.next());
            }
            await conn.exchange(batch);
          }
        } finally {
          conn.close();
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: WORKERS }, () => worker())).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}\nhelper log (end):\n${d.log().slice(-3000)}`);
      });
      for (const withNewline of [true, false, true, false]) {
        const conn = await FuzzConnection.open(d.socketPath, tally);
        expect(await conn.oversized(withNewline)).toEqual({ closed: true, tooLarge: 1 });
        conn.close();
      }
    } finally {
      stop = true;
    }
    const observed = await observer;

    // still up and serving, and a fresh client is served too
    expect(d.proc.exitCode).toBeNull();
    // whatever the valid mutations registered or created lies inside the run's directory
    const { images } = await good.call('images.list', {});
    const { snapshots } = await good.call('snapshots.list', {});
    for (const path of [...images.map((i) => i.path), ...snapshots.map((s) => s.storagePath)]) expect(path?.startsWith(`${d.dir}/`)).toBe(true);
    const fresh = await connectClient(d.socketPath);
    await expect(fresh.call('version', {})).resolves.toMatchObject({ major: expect.any(Number) });
    fresh.close();

    const peakMiB = vmKiB(pid, 'VmHWM') / 1024;
    const endMiB = vmKiB(pid, 'VmRSS') / 1024;
    console.log(
      `helper-protocol fuzz (seed ${SEED}): ${tally.sent} lines sent (${tally.blank} blank) over ${tally.connections} connections in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
        `${tally.responses} responses: ${tally.errors} errors ${JSON.stringify(tally.codes)}, ${tally.results} results; ${tally.notifications} notifications; ` +
        `well-behaved client: ${observed.calls} calls, slowest hello+devices.list ${observed.worstMs.toFixed(0)} ms; ` +
        `helper RSS ${(startRss / 1024).toFixed(0)} MiB at start, ${endMiB.toFixed(0)} MiB at end, peak (VmHWM) ${peakMiB.toFixed(0)} MiB`,
    );

    expect(tally.problems.slice(0, 10)).toEqual([]);
    expect(tally.sent).toBeGreaterThanOrEqual(LINES);
    // every line that is not blank had exactly one answer, nearly all of them errors
    expect(tally.responses).toBe(tally.sent - tally.blank);
    expect(tally.errors).toBeGreaterThan(tally.sent * 0.9);
    expect(tally.connections).toBeGreaterThanOrEqual(LINES / LINES_PER_CONNECTION);
    expect(observed.calls).toBeGreaterThan(0);
    expect(peakMiB).toBeLessThan(PEAK_RSS_BOUND_MIB);
  }, 180_000);
});

describe('helper protocol fuzz input', () => {
  const ctx = { root: '/tmp/fuzz-root', dir: '/tmp/fuzz-root/fuzz', device: 'disk1' };
  const line = (message: unknown): Buffer => Buffer.from(JSON.stringify(message));

  it('starts from a valid request of every method of the method table', () => {
    const all = templates(ctx, 1);
    expect(Object.keys(all).sort()).toEqual(Object.keys(methods).sort());
    for (const [method, params] of Object.entries(all)) {
      expect(classify(line({ id: 1, method, params })), method).toMatchObject({ acceptable: true, method });
    }
  });

  it('never lets a request the helper would accept name a path outside the run directory, start a workload or change settings', () => {
    const safe = (method: string, params: unknown): boolean => isSafe(classify(line({ id: 1, method, params })), ctx.root);
    expect(safe('images.create', { path: '/tmp/fuzz-root/fuzz/a.img', size: 4096 })).toBe(true);
    expect(safe('images.create', { path: '/tmp/fuzz-rootdisk.img', size: 4096 })).toBe(false);
    expect(safe('images.create', { path: '/tmp/fuzz-root/fuzz/../../etc/x', size: 4096 })).toBe(false);
    expect(safe('images.add', { path: '/dev/sda' })).toBe(false);
    expect(safe('snapshotCreate', { diffStoragePath: '/var/tmp/diff', limitSectors: 8 })).toBe(false);
    expect(safe('workload.start', { device: 'disk1', rateMiBps: 1, pattern: 'random' })).toBe(false);
    expect(safe('settings.set', { eventPollMs: 50 })).toBe(false);
    // what the helper refuses anyway is safe to send
    expect(safe('images.create', { path: '/etc/x', size: 'big' })).toBe(true);
  });

  it('generates no newline byte and every kind of line', () => {
    const generator = new LineGenerator(ctx, seededRandom(1));
    const kinds = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const generated = generator.next();
      expect(generated.bytes.includes(0x0a)).toBe(false);
      kinds.add(generated.kind);
    }
    expect([...kinds].sort()).toEqual(['mutated-bytes', 'mutated-value', 'random-bytes', 'valid']);
  });
});
