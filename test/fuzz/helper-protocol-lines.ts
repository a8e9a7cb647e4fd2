/**
 * Fuzz input for the helper protocol: a valid request of every method of the method
 * table, mutated (wrong types, huge numbers, deep nesting, long strings, control
 * characters, missing and extra keys, broken ids, byte flips, invalid UTF-8), and
 * random bytes. Lines never contain a newline byte. Every path the generator writes
 * lies inside the fuzz directory; `isSafe` refuses any line the helper would accept
 * that names a path outside the run's temporary directory (a mutation may remove a
 * "/" or add ".."), so the helper never creates or registers anything elsewhere.
 */
import { resolve } from 'node:path';
import { RequestSchema } from '../../engine/protocol/messages.js';
import { isMethodName, methods } from '../../engine/protocol/methods.js';
import type { MethodName } from '../../engine/protocol/methods.js';

export interface FuzzContext {
  /** Everything the helper may create lies under this directory. */
  root: string;
  /** Directory (under root) the generated paths point into. */
  dir: string;
  /** A registered image the read-only methods work on. */
  device: string;
}

/** A snapshot id no snapshot has. */
const UNKNOWN_SNAPSHOT = '5f0c1d2e-3b4a-4c5d-8e6f-708192a3b4c5';

/** One valid params object per method; methods that change state name things that do not exist. */
export function templates(ctx: FuzzContext, n: number): Record<MethodName, Record<string, unknown>> {
  return {
    hello: { protocolVersion: 1, client: 'fuzz' },
    version: {},
    snapshotCreate: { diffStoragePath: `${ctx.dir}/diff-${n}`, limitSectors: 2048, devices: ['no-such-disk'] },
    snapshotDestroy: { id: UNKNOWN_SNAPSHOT },
    snapshotTake: { id: UNKNOWN_SNAPSHOT },
    snapshotCollect: {},
    snapshotWaitEvent: { id: UNKNOWN_SNAPSHOT, timeoutMs: 10 },
    snapshotAdd: { id: UNKNOWN_SNAPSHOT, device: ctx.device },
    snapshotInfo: { device: ctx.device },
    storageInfo: { id: UNKNOWN_SNAPSHOT },
    storageGrow: { id: UNKNOWN_SNAPSHOT, sectors: 8 },
    'events.history': { id: UNKNOWN_SNAPSHOT },
    'events.dismiss': { id: UNKNOWN_SNAPSHOT },
    'snapshots.list': {},
    attach: { device: ctx.device },
    detach: { device: 'no-such-disk' },
    cbtInfo: { device: ctx.device },
    cbtMap: { device: ctx.device, offset: 0, length: 64 },
    cbtDirty: { device: ctx.device, ranges: [{ offset: 0, count: 8 }] },
    'devices.list': {},
    'images.create': { path: `${ctx.dir}/img-${n}.img`, size: 1 << 20, name: `fz${n}` },
    'images.add': { path: `${ctx.dir}/missing-${n}.img` },
    'images.list': {},
    'images.remove': { image: 'no-such-disk' },
    'exports.list': {},
    'workload.start': { device: 'no-such-disk', rateMiBps: 1, pattern: 'random' },
    'workload.stop': { device: 'no-such-disk' },
    'workload.list': {},
    'settings.get': {},
    'settings.set': { diffStorageLimitSectors: 4096 },
    subscribe: { topics: ['devices'] },
    unsubscribe: { topics: ['devices'] },
    'backup.plan': { dir: `${ctx.dir}/set-${n}` },
    'backup.start': { snapshotId: UNKNOWN_SNAPSHOT, dir: `${ctx.dir}/set-${n}`, kind: 'full' },
    'backup.verify': { dir: `${ctx.dir}/set-${n}` },
    'backup.restore': { dir: `${ctx.dir}/set-${n}`, point: '0001-20261201-140200-full', target: `${ctx.dir}/restored-${n}.img` },
    'backup.catalog': { dir: `${ctx.dir}/set-${n}` },
    'backup.export': { dir: `${ctx.dir}/set-${n}`, point: '0001-20261201-140200-full' },
    'backup.unexport': { name: `backup-${n}` },
    'jobs.list': {},
    'jobs.cancel': { jobId: `job-${n}` },
    'jobs.wait': { jobId: `job-${n}`, timeoutMs: 10 },
  };
}

export type LineKind = 'valid' | 'mutated-value' | 'mutated-bytes' | 'random-bytes' | 'long';

export interface FuzzLine {
  bytes: Buffer;
  kind: LineKind;
  /** Only whitespace once decoded: the helper ignores it. */
  blank: boolean;
  /** A request the helper accepts (it may still fail with an errno). */
  acceptable: boolean;
  /** The line's id when it has a number or string one (answers are matched by it). */
  id: number | string | null;
}

const NEWLINE = 0x0a;
/** Raw JSON tokens spliced in place of a value (numbers JSON.stringify cannot write). */
const HUGE_NUMBERS = [
  '1e308', '1e400', '-1e400', '9007199254740993', '123456789012345678901234567890', '-0', '0.5', '-1', '4294967296',
  '18446744073709551616', '1e-400', '2.5e15', '-9007199254740992',
];
const INVALID_UTF8 = [
  [0xc3], [0xff], [0xfe, 0xff], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80], [0xf4, 0x90, 0x80, 0x80],
];
const CONTROL = '\u0000\u0001\u001b[31m\r\t\u007f\u2028\u2029\ud800\udfff\ufeff';

export class LineGenerator {
  private n = 0;

  constructor(
    private readonly ctx: FuzzContext,
    private readonly random: () => number,
  ) {}

  private int(max: number): number {
    return Math.floor(this.random() * max);
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  next(): FuzzLine {
    for (;;) {
      const { bytes, kind } = this.make();
      if (bytes.includes(NEWLINE)) continue;
      const seen = classify(bytes);
      if (isSafe(seen, this.ctx.root)) return { bytes, kind, blank: seen.blank, acceptable: seen.acceptable, id: seen.id };
    }
  }

  /** A line of about `length` characters (under the line limit), still one JSON request. */
  long(length: number): FuzzLine {
    const method = this.pick(Object.keys(methods) as MethodName[]);
    const filler = this.int(2) === 0 ? 'x'.repeat(length) : '\u00e9'.repeat(Math.floor(length / 2));
    const id = 1_000_000 + this.n++;
    const text = JSON.stringify({ id, method, params: { [this.pick(['device', 'path', 'client', 'image'])]: filler } });
    return { bytes: Buffer.from(text), kind: 'long', blank: false, acceptable: false, id };
  }

  private make(): { bytes: Buffer; kind: LineKind } {
    this.n++;
    const r = this.random();
    if (r < 0.03) return { bytes: Buffer.from(JSON.stringify(this.request())), kind: 'valid' };
    if (r < 0.6) return { bytes: this.mutatedValue(), kind: 'mutated-value' };
    if (r < 0.9) return { bytes: this.mutatedBytes(Buffer.from(JSON.stringify(this.request()))), kind: 'mutated-bytes' };
    return { bytes: this.randomBytes(1 + this.int(2000)), kind: 'random-bytes' };
  }

  private request(): { id: number; method: string; params: Record<string, unknown> } {
    const method = this.pick(Object.keys(methods) as MethodName[]);
    return { id: 1_000_000 + this.n, method, params: structuredClone(templates(this.ctx, this.n)[method]) };
  }

  /** A request with one to three values replaced, keys removed or added, or the envelope broken. */
  private mutatedValue(): Buffer {
    const raws: string[] = [];
    const raw = (text: string): string => {
      raws.push(text);
      return `\u0000RAW${raws.length - 1}\u0000`;
    };
    const message: Record<string, unknown> = this.request();
    const count = 1 + this.int(3);
    for (let i = 0; i < count; i++) {
      const params = message.params;
      const paramsIsObject = typeof params === 'object' && params !== null && !Array.isArray(params);
      const target = this.int(4) === 0 || !paramsIsObject ? message : (params as Record<string, unknown>);
      const keys = Object.keys(target);
      const what = this.int(10);
      if (what === 0 && keys.length > 0) delete target[this.pick(keys)];
      else if (what === 1) {
        // defineProperty: a real "__proto__" key in the JSON, not a prototype change
        const key = this.pick(['extra', '__proto__', 'constructor', 'id', 'method', 'params', 'toString', '']);
        Object.defineProperty(target, key, { value: this.value(raw), enumerable: true, writable: true, configurable: true });
      }
      else if (what === 2) message.method = this.pick([...Object.keys(methods), 'formatDisk', '', 'hello ', 'HELLO', 'constructor', '__proto__', 'x'.repeat(200)]);
      else if (what === 3) message.id = this.pick<unknown>([-1, 0.5, null, '', 'x'.repeat(65), 2 ** 53, {}, [], true, raw(this.pick(HUGE_NUMBERS))]);
      else if (keys.length > 0) target[this.pick(keys)] = this.value(raw);
      else target.params = this.value(raw);
    }
    let text = JSON.stringify(message);
    text = text.replace(/"\\u0000RAW(\d+)\\u0000"/g, (_m, k: string) => raws[Number(k)] as string);
    return Buffer.from(text);
  }

  /** A value of a wrong or extreme kind; raw() splices JSON text in unquoted. */
  private value(raw: (text: string) => string): unknown {
    switch (this.int(14)) {
      case 0:
        return raw(this.pick(HUGE_NUMBERS));
      case 1: {
        const depth = this.int(10) === 0 ? this.pick([10_000, 100_000]) : this.pick([10, 100, 1000]);
        return this.int(2) === 0 ? raw('['.repeat(depth) + ']'.repeat(depth)) : raw('{"a":'.repeat(depth) + '1' + '}'.repeat(depth));
      }
      case 2:
        return 'y'.repeat(this.int(10) === 0 ? this.pick([10_000, 100_000]) : this.pick([201, 4097]));
      case 3:
        return CONTROL;
      case 4:
        return this.pick([null, true, false, 0, -1, 1.5, '', [], {}, [1, 2], { a: 1 }]);
      case 5:
        return `${this.ctx.dir}/${this.pick(['..', '../..', '.', 'a/../../b', 'sub/dir/x', 'x\ny', 'x\u0000y', '..\u0000'])}/f${this.n}`;
      case 6:
        return this.pick(['relative/path', '.', '..', '~/x', 'no-such-disk', 'disk1\u001b[2J', `${this.ctx.device}\n`]);
      case 7:
        return Array.from({ length: this.int(10) === 0 ? 4097 : this.pick([0, 1, 2, 257]) }, () => ({ offset: this.int(1 << 30), count: this.int(3) }));
      case 8:
        return this.pick(['snapshot', 'active', 'random', 'sequential', 'hotspot', 'event', 'devices', 'bogus']);
      case 9:
        return this.pick(['0b7c1a52-8d7e-4c36-9a57-2f0f3bd0e0a1', '0B7C1A52-8D7E-4C36-9A57-2F0F3BD0E0A1', '00000000-0000-0000-0000-000000000000', 'not-a-uuid']);
      case 10:
        return this.pick([Number.MAX_SAFE_INTEGER, 2 ** 31, 2 ** 32, 2 ** 63, 512, 511, 1, 0]);
      case 11:
        return { nested: { deeper: [this.pick(HUGE_NUMBERS), CONTROL] } };
      case 12:
        return this.randomBytes(1 + this.int(64)).toString('latin1');
      default:
        return this.pick([['devices', 'event'], ['bogus'], [], [1], ['snapshot', 'snapshot']]);
    }
  }

  private mutatedBytes(source: Buffer): Buffer {
    let bytes = Buffer.from(source);
    const count = 1 + this.int(4);
    for (let i = 0; i < count; i++) {
      const at = this.int(bytes.length + 1);
      switch (this.int(6)) {
        case 0: // flip one byte
          if (at < bytes.length) bytes[at] = this.byte();
          break;
        case 1: // insert bytes
          bytes = Buffer.concat([bytes.subarray(0, at), this.randomBytes(1 + this.int(8)), bytes.subarray(at)]);
          break;
        case 2: // delete a range
          bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + this.int(16))]);
          break;
        case 3: // truncate
          bytes = bytes.subarray(0, at);
          break;
        case 4: // invalid UTF-8
          bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(this.pick(INVALID_UTF8)), bytes.subarray(at)]);
          break;
        default: // duplicate a segment
          bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(this.int(bytes.length)), bytes.subarray(at)]);
      }
    }
    return bytes;
  }

  private byte(): number {
    const b = this.int(256);
    return b === NEWLINE ? 0x20 : b;
  }

  private randomBytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = this.byte();
    return out;
  }
}

/** What the helper makes of a line: blank (ignored), or whether it is a request it accepts. */
export interface Classified {
  blank: boolean;
  acceptable: boolean;
  method: MethodName | null;
  params: unknown;
  id: number | string | null;
}

export function classify(bytes: Buffer): Classified {
  let text = bytes.toString('utf8');
  if (text.endsWith('\r')) text = text.slice(0, -1);
  const refused = { blank: false, acceptable: false, method: null, params: null, id: null };
  if (text.trim().length === 0) return { ...refused, blank: true };
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    return refused;
  }
  const raw = typeof message === 'object' && message !== null ? (message as { id?: unknown }).id : undefined;
  const id = typeof raw === 'number' || typeof raw === 'string' ? raw : null;
  const envelope = RequestSchema.safeParse(message);
  if (!envelope.success || !isMethodName(envelope.data.method)) return { ...refused, id };
  const method = envelope.data.method;
  const params = methods[method].params.safeParse(envelope.data.params ?? {});
  return { blank: false, acceptable: params.success, method, params: params.success ? params.data : null, id };
}

function strings(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const v of value) strings(v, out);
  else if (typeof value === 'object' && value !== null) for (const v of Object.values(value)) strings(v, out);
  return out;
}

/**
 * Whether the helper may run this line: anything it refuses is safe; a request it
 * accepts must name no path outside `root`, must not start a workload, change the
 * settings or wait long.
 */
export function isSafe(line: Classified, root: string): boolean {
  const { acceptable, method, params } = line;
  if (!acceptable || method === null) return true;
  if (method === 'workload.start' || method === 'settings.set') return false;
  if ((method === 'snapshotWaitEvent' || method === 'jobs.wait') && (params as { timeoutMs: number }).timeoutMs > 1000) return false;
  return strings(params).every((s) => !s.startsWith('/') || resolve(s).startsWith(`${root}/`));
}
