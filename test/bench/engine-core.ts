/**
 * Benchmark of the embedded engine (engine/core), default module parameters
 * (256 KiB chunks, 64 KiB tracking blocks, store queue 16, pool 128, 1 GiB storage
 * portions), on a 1 GiB sparse image file in the temp directory.
 *
 *   npx tsx test/bench/engine-core.ts
 *
 * Measures, at queue depth 8 (8 requests in flight, as an NBD client would):
 *  - sequential 1 MiB and random 4 KiB writes without a snapshot (tracking only);
 *  - the same with a snapshot held, every write being the first to its chunks
 *    (copy-on-write: the old chunk is read, queued and stored before the write);
 *  - sequential 1 MiB reads of the snapshot image (half of it from the difference
 *    storage, half from the original).
 * Prints a table and writes bench-results/engine-core.json (with the machine's
 * CPU count and load average at start, so that numbers can be judged).
 *
 *   npx tsx test/bench/engine-core.ts --runs=3   (each scenario: median of 3 runs)
 *   npx tsx test/bench/engine-core.ts --cow=buffered   (copy-on-write through chunk
 *     buffers, as where the kernel refuses copy_file_range; default: in-kernel copies)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BUFFERED_STORAGE_FILE_OPS } from '../../engine/core/diff-storage.js';
import { createEmbeddedEngine, DEFAULT_PARAMS } from '../../engine/core/index.js';
import type { BlockDevice } from '../../engine/core/index.js';

const GiB = 1 << 30;
const MiB = 1 << 20;
const KiB = 1024;
const DEVICE_BYTES = GiB;
const QUEUE_DEPTH = 8;
const CHUNK = 2 ** DEFAULT_PARAMS.chunkMinimumShift;

interface Result {
  name: string;
  blockSize: number;
  ops: number;
  bytes: number;
  seconds: number;
  mibPerSec: number;
  iops: number;
}

interface MachineInfo {
  cpus: number;
  cpuModel: string;
  totalMemBytes: number;
  loadAverageAtStart: number[];
  loadAverageAtEnd?: number[];
}

function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    totalMemBytes: os.totalmem(),
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** How copy-on-write copies chunks: `--cow=buffered` reads them into memory; default: in-kernel copies. */
function cowPathFromArgs(): 'in-kernel copy' | 'buffered' {
  const arg = process.argv.find((a) => a.startsWith('--cow='));
  if (arg === undefined || arg === '--cow=copy') return 'in-kernel copy';
  if (arg === '--cow=buffered') return 'buffered';
  throw new Error(`--cow must be copy or buffered, got ${arg}`);
}
const COW_PATH = cowPathFromArgs();

function runsFromArgs(): number {
  const arg = process.argv.find((a) => a.startsWith('--runs='));
  const n = arg === undefined ? 1 : Number(arg.slice('--runs='.length));
  if (!Number.isInteger(n) || n < 1 || n > 20) throw new Error(`--runs must be an integer in [1, 20], got ${arg}`);
  return n;
}

/** Runs `ops` operations produced by `op(i)` with QUEUE_DEPTH in flight. */
async function run(name: string, blockSize: number, ops: number, op: (i: number) => Promise<unknown>): Promise<Result> {
  let next = 0;
  const t0 = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (next < ops) {
      const i = next++;
      await op(i);
    }
  };
  await Promise.all(Array.from({ length: QUEUE_DEPTH }, worker));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const bytes = ops * blockSize;
  return { name, blockSize, ops, bytes, seconds, mibPerSec: bytes / MiB / seconds, iops: ops / seconds };
}

/** A deterministic shuffle of 0..n-1. */
function permutation(n: number, seed: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  let x = seed;
  for (let i = n - 1; i > 0; i--) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const j = x % (i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

interface Pass {
  results: Result[];
  storage: unknown;
  params: unknown;
}

/** One pass over every scenario, on a fresh image and engine. */
async function runOnce(): Promise<Pass> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'engine-core-bench-'));
  const imagePath = path.join(dir, 'disk.img');
  fs.closeSync(fs.openSync(imagePath, 'w'));
  fs.truncateSync(imagePath, DEVICE_BYTES);
  const engine = createEmbeddedEngine(COW_PATH === 'buffered' ? { storageFile: BUFFERED_STORAGE_FILE_OPS } : {});
  const results: Result[] = [];
  try {
    await engine.addDevice({ path: imagePath, name: 'disk' });
    await engine.attach('disk');
    const dev: BlockDevice = engine.device('disk');
    const big = Buffer.alloc(MiB, 0x5a);
    const small = Buffer.alloc(4 * KiB, 0xa5);
    const chunks = DEVICE_BYTES / CHUNK;

    // Fill the device once so that reads below are of real data, not holes.
    const fill = await run('fill (sequential 1 MiB, no snapshot)', MiB, DEVICE_BYTES / MiB, (i) => dev.write(i * MiB, big));
    void fill;

    // 1. No snapshot: the tracker only.
    results.push(await run('write seq 1 MiB, no snapshot', MiB, 512, (i) => dev.write(i * MiB, big)));
    const perm0 = permutation(DEVICE_BYTES / (4 * KiB), 1);
    results.push(await run('write rand 4 KiB, no snapshot', 4 * KiB, 32768, (i) => dev.write(perm0[i]! * 4 * KiB, small)));

    // 2. Snapshot held: every write is the first to its chunk(s).
    const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'diff'), limitSectors: (2 * GiB) / 512 });
    await engine.snapshotAdd(id, 'disk');
    await engine.snapshotTake(id);
    // sequential COW over the first half of the device
    results.push(await run('write seq 1 MiB, snapshot (COW)', MiB, 512, (i) => dev.write(i * MiB, big)));
    // random COW: one 4 KiB write into each of 2048 distinct untouched chunks of the second half
    const half = chunks / 2;
    const perm1 = permutation(half, 2);
    results.push(
      await run('write rand 4 KiB, snapshot (COW)', 4 * KiB, 2048, (i) => {
        const chunk = half + perm1[i]!;
        const within = (perm1[(i + 1) % half]! % (CHUNK / (4 * KiB))) * 4 * KiB;
        return dev.write(chunk * CHUNK + within, small);
      }),
    );
    // writes to chunks already copied: no COW any more
    results.push(await run('write seq 1 MiB, snapshot, chunks already copied', MiB, 512, (i) => dev.write(i * MiB, big)));

    // 3. Image reads: the first 512 MiB comes from the difference storage, the rest from the original.
    const img = engine.image((await engine.snapshotInfo('disk')).image);
    results.push(await run('image read seq 1 MiB (storage half + original half)', MiB, DEVICE_BYTES / MiB, (i) => img.read(i * MiB, MiB)));
    results.push(await run('image read rand 4 KiB', 4 * KiB, 32768, (i) => img.read(perm0[i]! * 4 * KiB, 4 * KiB)));
    const storage = await engine.storageInfo(id);
    return { results, storage, params: engine.params };
  } finally {
    await engine.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const runs = runsFromArgs();
  const machine = machineInfo();
  console.log(
    `engine-core bench: ${machine.cpus} CPU (${machine.cpuModel}), load average at start ${machine.loadAverageAtStart.join(' ')}, ` +
      `${runs === 1 ? '1 run' : `median of ${runs} runs`}, copy-on-write: ${COW_PATH}`,
  );
  const passes: Pass[] = [];
  for (let i = 0; i < runs; i++) {
    passes.push(await runOnce());
    if (runs > 1) console.log(`run ${i + 1}/${runs} done`);
  }
  machine.loadAverageAtEnd = os.loadavg().map((l) => Math.round(l * 100) / 100);
  // Per scenario: the median run (by MiB/s) of all passes.
  const results: Result[] = passes[0]!.results.map((first, k) => {
    const all = passes.map((p) => p.results[k]!);
    const m = median(all.map((r) => r.mibPerSec));
    const seconds = first.bytes / MiB / m;
    return { ...first, seconds, mibPerSec: m, iops: first.ops / seconds };
  });
  const spread = (k: number): string => {
    if (runs === 1) return '';
    const v = passes.map((p) => p.results[k]!.mibPerSec);
    return `${Math.min(...v).toFixed(0)}–${Math.max(...v).toFixed(0)}`;
  };
  const storage = passes[passes.length - 1]!.storage as { usedSectors?: number; allocatedSectors?: number };

  // The MiB/s range column (min–max over the runs) only with several runs.
  const keep = (cells: string[]): string[] => (runs > 1 ? cells : cells.filter((_, i) => i !== 3));
  const rows = results.map((r, k) =>
    keep([r.name, r.mibPerSec.toFixed(1), Math.round(r.iops).toString(), spread(k), r.ops.toString(), r.seconds.toFixed(2)]),
  );
  const header = keep(['scenario (queue depth 8, default params)', 'MiB/s', 'IOPS', 'MiB/s range', 'ops', 's']);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  console.log(`difference storage: ${storage.usedSectors ?? 0} sectors used, ${storage.allocatedSectors ?? 0} allocated`);
  console.log(`load average at end: ${machine.loadAverageAtEnd.join(' ')}`);

  const outDir = path.join(process.cwd(), 'bench-results');
  fs.mkdirSync(outDir, { recursive: true });
  const out = {
    benchmark: 'engine-core',
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    cpus: machine.cpus,
    machine,
    runs,
    cowPath: COW_PATH,
    deviceBytes: DEVICE_BYTES,
    queueDepth: QUEUE_DEPTH,
    params: passes[0]!.params,
    storage,
    results,
    ...(runs > 1 ? { allRuns: passes.map((p) => p.results) } : {}),
  };
  fs.writeFileSync(path.join(outDir, 'engine-core.json'), JSON.stringify(out, null, 2) + '\n');
  console.log(`wrote ${path.join(outDir, 'engine-core.json')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
