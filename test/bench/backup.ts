/**
 * Backup bench, on three raw images, one after the other:
 *
 * - "sparse" (1 GiB): about 30% of the device holds data (random runs), the rest are
 *   holes;
 * - "allocated" (1 GiB) and "allocated-4g" (4 GiB): every byte is random data, as a
 *   well-used disk (no holes, nothing compresses).
 *
 * Each is read as a BlockDevice whose extents() names the file's holes (as a snapshot
 * image does; the embedded engine's path), by every backup of the bench: the full, the
 * incrementals, verify and restore read the same image through the same code the helper
 * runs. Per image:
 *
 * - a full backup (engine/backup, qcow2) by default (holes not read, SHA-256 left to the
 *   first verify); on the sparse image also with sha256: true, and with sha256: true
 *   through a plain reader that reads every byte;
 * - against `qemu-img convert -O qcow2` reading the same image through our NBD server
 *   (which answers base:allocation block status from the same extents(), so qemu-img
 *   skips the holes too): the target to meet, three ways. qemu-img convert's default
 *   cache mode for the target is "unsafe" (it never calls fdatasync: measured with
 *   strace, qemu-img 7.2), while every backup point is fdatasynced before it is named;
 *   so also with `-t writeback` (qemu-img flushes the target at close) and the default
 *   followed by an fdatasync of its file (what `sync -d FILE` does), both as durable as
 *   a point;
 * - for information `qemu-img convert` of the local file (which skips its holes with
 *   SEEK_DATA) and `cp --sparse=always`;
 * - verify and restore of the full;
 * - incrementals with 1% and 10% of the tracking blocks changed (random blocks written
 *   with random data), each continuing the chain, as a fraction of the full's time (the
 *   default, which reads only the changed blocks; on the sparse image also with the
 *   whole-image SHA-256, which reads the whole image).
 *
 * The incremental target ("1% in at most 3% of the full's time") compares an
 * incremental's data with the full's: 1% of the tracking blocks is 1% of the device,
 * which is 1% of an allocated device's full but 3.3% of the sparse one's (the full
 * copies only the 30% that holds data). The 4 GiB allocated image is the one the
 * target is judged on: a point has fixed costs whatever the device size (about 35 ms
 * on the machine this was written on: the folder lock, planning against the chain's
 * manifests, two fdatasyncs and a folder fsync, the manifest of every tracking block's
 * hash), which are 5% of a 1 GiB device's full backup but a small part of the 1% of a
 * larger device. Administrators' devices are tens of GiB and more; 4 GiB is the
 * largest that keeps the bench within minutes. The 1 GiB images are printed as well.
 *
 * All runs read the image from the page cache (the file was just written), so the
 * figures compare CPU and write costs, not disk reads. The image's own writes (making
 * it, changing blocks) are synced before any timing. Every figure is the median of
 * REPEATS runs (INCREMENTAL_REPEATS for the incrementals, which are short and noisy).
 *
 * Run: npm run bench:backup   (about 5 minutes; writes bench-results/backup.json)
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { backupPoint } from '../../engine/backup/backup-point.js';
import { loadPoints } from '../../engine/backup/chain.js';
import { RawImage, readImage } from '../../engine/backup/image-source.js';
import { restorePoint } from '../../engine/backup/restore.js';
import { verifyPoint } from '../../engine/backup/verify.js';
import { staticExports } from '../../engine/nbd/export-source.js';
import { NbdServer } from '../../engine/nbd/server.js';
import { seededRandom } from '../helpers/seeded-random.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const BLOCK = 64 * 1024; // tracking block
const REPEATS = 3;
const INCREMENTAL_REPEATS = 5;

interface ImageSpec {
  name: 'sparse' | 'allocated' | 'allocated-4g';
  /** Device size in bytes. */
  size: number;
  /** Fraction of the device written with data (1: all of it). */
  dataFraction: number;
  /** Also measure the sha256: true variants (seconds each; the sparse image only). */
  sha256Variants: boolean;
}

const IMAGES: ImageSpec[] = [
  { name: 'sparse', size: GiB, dataFraction: 0.3, sha256Variants: true },
  { name: 'allocated', size: GiB, dataFraction: 1, sha256Variants: false },
  { name: 'allocated-4g', size: 4 * GiB, dataFraction: 1, sha256Variants: false },
];

interface IncrementalResult {
  changed: number;
  sha256: boolean;
  seconds: number;
  fractionOfFull: number;
  fileBytes: number;
}

interface ImageResult {
  image: ImageSpec['name'];
  size: number;
  dataBytes: number;
  loadAverageAtStart: number[];
  loadAverageAtEnd: number[];
  seconds: Record<string, number>;
  incrementals: IncrementalResult[];
}

const loadNow = (): number[] => loadavg().map((l) => Math.round(l * 100) / 100);

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function median(fn: () => Promise<number>, repeats = REPEATS): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < repeats; i++) xs.push(await fn());
  xs.sort((a, b) => a - b);
  return xs[Math.floor(xs.length / 2)]!;
}

/** Writes random data into runs covering about `fraction` of a sparse file (all of it for 1). */
async function makeImage(path: string, size: number, fraction: number): Promise<void> {
  const fh = await open(path, 'w');
  await fh.truncate(size);
  const rnd = seededRandom(1);
  let at = 0;
  while (at < size) {
    const len = Math.min(size - at, BLOCK * (1 + Math.floor(rnd() * 64)));
    if (fraction >= 1 || rnd() < fraction) await fh.write(randomBytes(len), 0, len, at);
    at += len;
  }
  // on disk before anything is timed: on ext4 (data=ordered) the first fsync of a
  // backup would otherwise also write out the bench's own dirty image data
  await fh.sync();
  await fh.close();
}

/** Overwrites `fraction` of the tracking blocks with random bytes and marks them in the CBT map. */
async function changeBlocks(path: string, fraction: number, seed: number, changeNumber: number, map: Uint8Array): Promise<void> {
  const rnd = seededRandom(seed);
  const fh = await open(path, 'r+');
  const count = Math.round(map.length * fraction);
  let changed = 0;
  while (changed < count) {
    const b = Math.floor(rnd() * map.length);
    if (map[b] === changeNumber) continue;
    map[b] = changeNumber;
    await fh.write(randomBytes(BLOCK), 0, BLOCK, b * BLOCK);
    changed++;
  }
  await fh.sync(); // the simulated device writes are not the incremental's to sync (see makeImage)
  await fh.close();
}

async function fdatasyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

async function benchImage(work: string, spec: ImageSpec): Promise<ImageResult> {
  const loadAverageAtStart = loadNow();
  const image = join(work, `${spec.name}.raw`);
  await makeImage(image, spec.size, spec.dataFraction);
  const dataBytes = (await stat(image)).blocks * 512;
  const device = { path: '/dev/bench', size: spec.size };
  const map = new Uint8Array(spec.size / BLOCK).fill(1);
  const source = await RawImage.open(image);
  const chain = (name: string): string => join(work, `${spec.name}-${name}`);
  const cbt = { generationId: 'g', changeNumber: 1, blockSize: BLOCK };
  const seconds: Record<string, number> = {};
  try {
    let fullRuns = 0;
    // the default: the image as a BlockDevice (its holes are not read), SHA-256 left to the first verify
    seconds.full = await median(async () => {
      const dir = chain(`full${fullRuns++}`);
      const s = await timed(() => backupPoint({ dir, source, device, cbt, cbtMap: map, kind: 'full' }));
      if (fullRuns < REPEATS) await rm(dir, { recursive: true });
      return s;
    });
    const fullDir = chain(`full${fullRuns - 1}`);
    if (spec.sha256Variants) {
      let otherRuns = 0;
      const fullOther = (src: RawImage | ((offset: number, length: number) => Promise<Buffer>)): Promise<number> =>
        median(async () => {
          const dir = chain(`other${otherRuns++}`);
          const s = await timed(() => backupPoint({ dir, source: src, device, cbt, cbtMap: map, kind: 'full', sha256: true }));
          await rm(dir, { recursive: true });
          return s;
        });
      // sha256: true, holes still skipped; and the way before extents(): every byte read and hashed
      seconds.fullSha256 = await fullOther(source);
      seconds.fullEveryByte = await fullOther((offset, length) => readImage(source, offset, length));
    }
    const server = new NbdServer({ exports: staticExports([source]), unixSocket: join(work, 'nbd.sock') });
    await server.start();
    const uri = server.uriFor(source.name);
    const q = join(work, 'q.qcow2');
    const qemuNbdRun = (extra: string[], after: () => Promise<void> = async () => undefined): Promise<number> =>
      median(async () => {
        await rm(q, { force: true });
        return timed(async () => {
          await run('qemu-img', ['convert', ...extra, '-f', 'raw', '-O', 'qcow2', uri, q]);
          await after();
        });
      });
    seconds.qemuImgConvertNbd = await qemuNbdRun([]);
    seconds.qemuImgConvertNbdWriteback = await qemuNbdRun(['-t', 'writeback']);
    seconds.qemuImgConvertNbdThenFdatasync = await qemuNbdRun([], () => fdatasyncFile(q));
    await server.close();
    seconds.qemuImgConvertFile = await median(async () => {
      await rm(q, { force: true });
      return timed(() => run('qemu-img', ['convert', '-O', 'qcow2', image, q]));
    });
    seconds.cpSparse = await median(async () => {
      await rm(join(work, 'c.raw'), { force: true });
      return timed(() => run('cp', ['--sparse=always', image, join(work, 'c.raw')]));
    });
    await rm(join(work, 'c.raw'), { force: true });
    await rm(q, { force: true });
    const fullId = (await loadPoints(fullDir))[0]!.id;
    seconds.verify = await median(() => timed(() => verifyPoint(fullDir, fullId)));
    seconds.restore = await median(async () => {
      await rm(join(work, 'restored.raw'), { force: true });
      return timed(() => restorePoint(fullDir, fullId, join(work, 'restored.raw')));
    });
    await rm(join(work, 'restored.raw'), { force: true });

    const incrementals: IncrementalResult[] = [];
    let changeNumber = 1;
    for (const fraction of [0.01, 0.1]) {
      for (const sha256 of spec.sha256Variants ? [undefined, true] : [undefined]) {
        const s = await median(async () => {
          changeNumber++;
          await changeBlocks(image, fraction, changeNumber, changeNumber, map);
          // each run continues the same chain: one more incremental
          return timed(() => backupPoint({ dir: fullDir, source, device, cbt: { generationId: 'g', changeNumber, blockSize: BLOCK }, cbtMap: map, kind: 'incremental', sha256 }));
        }, INCREMENTAL_REPEATS);
        const points = await loadPoints(fullDir);
        const last = points[points.length - 1]!;
        incrementals.push({ changed: fraction, sha256: sha256 === true, seconds: s, fractionOfFull: s / seconds.full, fileBytes: last.image.fileBytes });
      }
    }
    return { image: spec.name, size: spec.size, dataBytes, loadAverageAtStart, loadAverageAtEnd: loadNow(), seconds, incrementals };
  } finally {
    await source.close();
    await rm(image, { force: true });
  }
}

function printImage(r: ImageResult): void {
  const gib = r.size / MiB;
  const s = r.seconds;
  const rate = (x: number): string => `${(gib / x).toFixed(0)} MiB/s`;
  const row = (label: string, x: number | undefined): [string, string, string][] => (x === undefined ? [] : [[label, rate(x), `${x.toFixed(2)} s`]]);
  const rows: [string, string, string][] = [
    ...row('full backup (engine/backup, qcow2; default: holes skipped, SHA-256 at first verify)', s.full),
    ...row('full backup, sha256: true (holes skipped, SHA-256 during the backup)', s.fullSha256),
    ...row('full backup, sha256: true, every byte read (a reader without extents)', s.fullEveryByte),
    ...row('qemu-img convert -O qcow2 of the NBD export (default: cache=unsafe, never fsynced)', s.qemuImgConvertNbd),
    ...row('qemu-img convert -t writeback -O qcow2 of the NBD export (fsynced at close, like a point)', s.qemuImgConvertNbdWriteback),
    ...row('qemu-img convert -O qcow2 of the NBD export, then fdatasync of its file', s.qemuImgConvertNbdThenFdatasync),
    ...row('qemu-img convert -O qcow2 of the local file', s.qemuImgConvertFile),
    ...row('cp --sparse=always', s.cpSparse),
    ...row('verify (full point; the first one records the SHA-256)', s.verify),
    ...row('restore (full point, sparse raw)', s.restore),
    ...r.incrementals.map((i): [string, string, string] => [
      `incremental ${i.changed * 100}% changed, ${i.sha256 ? 'with whole-image SHA-256' : 'default (changed blocks only)'}`,
      `${(100 * i.fractionOfFull).toFixed(1)}% of the full's time`,
      `${i.seconds.toFixed(3)} s, file ${(i.fileBytes / MiB).toFixed(1)} MiB`,
    ]),
  ];
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((x) => x[c]!.length)));
  console.log('');
  console.log(
    `${r.image} image: ${gib} MiB raw, ${(r.dataBytes / MiB).toFixed(0)} MiB of data, tracking block ${BLOCK / 1024} KiB, page cache warm; ` +
      `median of ${REPEATS} (incrementals ${INCREMENTAL_REPEATS}); load average at start ${r.loadAverageAtStart.join(' ')}, at end ${r.loadAverageAtEnd.join(' ')}`,
  );
  for (const x of rows) console.log(`${x[0].padEnd(widths[0]!)}  ${x[1].padStart(widths[1]!)}  ${x[2].padStart(widths[2]!)}`);
  const full = s.full!;
  console.log(
    `full backup / qemu-img convert time: ${(full / s.qemuImgConvertNbdWriteback!).toFixed(2)} (-t writeback), ` +
      `${(full / s.qemuImgConvertNbdThenFdatasync!).toFixed(2)} (then fdatasync), ${(full / s.qemuImgConvertNbd!).toFixed(2)} (qemu-img not fsynced)`,
  );
}

async function main(): Promise<void> {
  const started = Date.now();
  const work = await mkdtemp(join(tmpdir(), 'bsm-bench-backup-'));
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown' };
  try {
    const results: ImageResult[] = [];
    console.log(`Backup bench: machine ${machine.cpus} CPU (${machine.cpuModel})`);
    for (const spec of IMAGES) {
      const r = await benchImage(work, spec);
      printImage(r);
      results.push(r);
    }
    console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
    await mkdir('bench-results', { recursive: true });
    await writeFile(
      join('bench-results', 'backup.json'),
      `${JSON.stringify({ date: new Date().toISOString(), trackingBlock: BLOCK, repeats: REPEATS, incrementalRepeats: INCREMENTAL_REPEATS, machine, images: results }, null, 2)}\n`,
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
