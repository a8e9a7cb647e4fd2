/**
 * Backup bench: a full backup (engine/backup, qcow2) of a sparse 1 GiB raw image with
 * about 30% data, read as a BlockDevice whose extents() names the file's holes (as a
 * snapshot image does), by default (holes not read, SHA-256 left to the first verify),
 * with sha256: true, and with sha256: true through a plain reader that reads every
 * byte; against `qemu-img convert -O qcow2` reading the same image through our NBD
 * server (which answers base:allocation block status from the same extents(), so
 * qemu-img skips the holes too; the target to meet), and for
 * fairness twice: qemu-img convert's default cache mode for the target is "unsafe" (it
 * never calls fdatasync: measured with strace, qemu-img 7.2), while every backup point
 * is fdatasynced before it is named; `-t writeback` makes qemu-img flush the target at
 * close, as durable as a backup point. For
 * information `qemu-img convert` of the local file (which skips its holes with
 * SEEK_DATA) and `cp --sparse=always`; incrementals with 1% and 10% of the tracking
 * blocks changed, as a fraction of the full's time (the default, which reads only the
 * changed blocks, and with the whole-image SHA-256, which reads the whole image);
 * verify and restore.
 *
 * All runs read the image from the page cache (the file was just written), so the
 * figures compare CPU and write costs, not disk reads. The image's own writes (making
 * it, changing blocks) are synced before any timing. Every figure is the median of
 * REPEATS runs.
 *
 * Run: npm run bench:backup   (a few minutes; writes bench-results/backup.json)
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
const SIZE = 1024 * MiB;
const BLOCK = 64 * 1024; // tracking block
const DATA_FRACTION = 0.3;
const REPEATS = 3;

const loadNow = (): number[] => loadavg().map((l) => Math.round(l * 100) / 100);

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function median(fn: () => Promise<number>): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < REPEATS; i++) xs.push(await fn());
  xs.sort((a, b) => a - b);
  return xs[Math.floor(xs.length / 2)]!;
}

/** Writes random data into runs covering about DATA_FRACTION of a sparse file. */
async function makeImage(path: string): Promise<void> {
  const fh = await open(path, 'w');
  await fh.truncate(SIZE);
  const rnd = seededRandom(1);
  let at = 0;
  while (at < SIZE) {
    const len = Math.min(SIZE - at, BLOCK * (1 + Math.floor(rnd() * 64)));
    if (rnd() < DATA_FRACTION) await fh.write(randomBytes(len), 0, len, at);
    at += len;
  }
  // on disk before anything is timed: on ext4 (data=ordered) the first fsync of a
  // backup would otherwise also write out the bench's own dirty image data
  await fh.sync();
  await fh.close();
}

/** Overwrites `fraction` of the tracking blocks with random bytes; returns the CBT map for it. */
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

async function main(): Promise<void> {
  const started = Date.now();
  const work = await mkdtemp(join(tmpdir(), 'bsm-bench-backup-'));
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', loadAverageAtStart: loadNow(), loadAverageAtEnd: [] as number[] };
  try {
    const image = join(work, 'disk.raw');
    await makeImage(image);
    const allocated = (await stat(image)).blocks * 512;
    const device = { path: '/dev/bench', size: SIZE };
    const map = new Uint8Array(SIZE / BLOCK).fill(1);
    const source = await RawImage.open(image);
    const reader = (offset: number, length: number): Promise<Buffer> => readImage(source, offset, length);
    const chain = (name: string): string => join(work, name);
    const cbt = { generationId: 'g', changeNumber: 1, blockSize: BLOCK };
    let fullRuns = 0;
    // the default: the image as a BlockDevice (its holes are not read), SHA-256 left to the first verify
    const full = await median(async () => {
      const dir = chain(`full${fullRuns++}`);
      const s = await timed(() => backupPoint({ dir, source, device, cbt, cbtMap: map, kind: 'full' }));
      if (fullRuns < REPEATS) await rm(dir, { recursive: true });
      return s;
    });
    let otherRuns = 0;
    const fullOther = (src: typeof source | typeof reader): Promise<number> =>
      median(async () => {
        const dir = chain(`other${otherRuns++}`);
        const s = await timed(() => backupPoint({ dir, source: src, device, cbt, cbtMap: map, kind: 'full', sha256: true }));
        await rm(dir, { recursive: true });
        return s;
      });
    // sha256: true, holes still skipped; and the way before extents(): every byte read and hashed
    const fullSha = await fullOther(source);
    const fullEveryByte = await fullOther(reader);
    const fullDir = chain(`full${fullRuns - 1}`);
    const server = new NbdServer({ exports: staticExports([source]), unixSocket: join(work, 'nbd.sock') });
    await server.start();
    const uri = server.uriFor(source.name);
    const qemuNbdRun = (extra: string[]): Promise<number> =>
      median(async () => {
        await rm(join(work, 'q.qcow2'), { force: true });
        return timed(() => run('qemu-img', ['convert', ...extra, '-f', 'raw', '-O', 'qcow2', uri, join(work, 'q.qcow2')]));
      });
    const qemuNbd = await qemuNbdRun([]);
    const qemuNbdDurable = await qemuNbdRun(['-t', 'writeback']);
    await server.close();
    const qemu = await median(async () => {
      await rm(join(work, 'q.qcow2'), { force: true });
      return timed(() => run('qemu-img', ['convert', '-O', 'qcow2', image, join(work, 'q.qcow2')]));
    });
    const cp = await median(async () => {
      await rm(join(work, 'c.raw'), { force: true });
      return timed(() => run('cp', ['--sparse=always', image, join(work, 'c.raw')]));
    });
    await rm(join(work, 'c.raw'), { force: true });
    await rm(join(work, 'q.qcow2'), { force: true });
    const fullId = (await loadPoints(fullDir))[0]!.id;
    const verify = await median(() => timed(() => verifyPoint(fullDir, fullId)));
    const restore = await median(async () => {
      await rm(join(work, 'restored.raw'), { force: true });
      return timed(() => restorePoint(fullDir, fullId, join(work, 'restored.raw')));
    });
    await rm(join(work, 'restored.raw'), { force: true });

    const incrementals: { changed: number; sha256: boolean; seconds: number; fractionOfFull: number; fileBytes: number }[] = [];
    let changeNumber = 1;
    for (const fraction of [0.01, 0.1]) {
      for (const sha256 of [undefined, true]) {
        const seconds = await median(async () => {
          changeNumber++;
          await changeBlocks(image, fraction, changeNumber, changeNumber, map);
          // each run continues the same chain: one more incremental
          return timed(() => backupPoint({ dir: fullDir, source: reader, device, cbt: { generationId: 'g', changeNumber, blockSize: BLOCK }, cbtMap: map, kind: 'incremental', sha256 }));
        });
        const points = await loadPoints(fullDir);
        const last = points[points.length - 1]!;
        incrementals.push({ changed: fraction, sha256: sha256 === true, seconds, fractionOfFull: seconds / full, fileBytes: last.image.fileBytes });
      }
    }
    await source.close();
    machine.loadAverageAtEnd = loadNow();

    const gib = SIZE / MiB;
    const rows: [string, string, string][] = [
      ['full backup (engine/backup, qcow2; default: holes skipped, SHA-256 at first verify)', `${(gib / full).toFixed(0)} MiB/s`, `${full.toFixed(2)} s`],
      ['full backup, sha256: true (holes skipped, SHA-256 during the backup)', `${(gib / fullSha).toFixed(0)} MiB/s`, `${fullSha.toFixed(2)} s`],
      ['full backup, sha256: true, every byte read (a reader without extents)', `${(gib / fullEveryByte).toFixed(0)} MiB/s`, `${fullEveryByte.toFixed(2)} s`],
      ['qemu-img convert -O qcow2 of the NBD export (default: cache=unsafe, never fsynced)', `${(gib / qemuNbd).toFixed(0)} MiB/s`, `${qemuNbd.toFixed(2)} s`],
      ['qemu-img convert -t writeback -O qcow2 of the NBD export (fsynced at close, like a point)', `${(gib / qemuNbdDurable).toFixed(0)} MiB/s`, `${qemuNbdDurable.toFixed(2)} s`],
      ['qemu-img convert -O qcow2 of the local file', `${(gib / qemu).toFixed(0)} MiB/s`, `${qemu.toFixed(2)} s`],
      ['cp --sparse=always', `${(gib / cp).toFixed(0)} MiB/s`, `${cp.toFixed(2)} s`],
      ['verify (full point; the first one records the SHA-256)', `${(gib / verify).toFixed(0)} MiB/s`, `${verify.toFixed(2)} s`],
      ['restore (full point, sparse raw)', `${(gib / restore).toFixed(0)} MiB/s`, `${restore.toFixed(2)} s`],
      ...incrementals.map((i): [string, string, string] => [
        `incremental ${i.changed * 100}% changed, ${i.sha256 ? 'with whole-image SHA-256' : 'default (changed blocks only)'}`,
        `${(100 * i.fractionOfFull).toFixed(1)}% of the full's time`,
        `${i.seconds.toFixed(2)} s, file ${(i.fileBytes / MiB).toFixed(1)} MiB`,
      ]),
    ];
    const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
    console.log(`Backup bench: sparse ${gib} MiB raw image, ${(allocated / MiB).toFixed(0)} MiB of data, tracking block ${BLOCK / 1024} KiB, page cache warm; median of ${REPEATS}`);
    console.log(`machine: ${machine.cpus} CPU (${machine.cpuModel}), load average at start ${machine.loadAverageAtStart.join(' ')}, at end ${machine.loadAverageAtEnd.join(' ')}`);
    for (const r of rows) console.log(`${r[0].padEnd(widths[0]!)}  ${r[1].padStart(widths[1]!)}  ${r[2].padStart(widths[2]!)}`);
    console.log(`full backup / qemu-img convert time: ${(full / qemuNbdDurable).toFixed(2)} (both fsynced), ${(full / qemuNbd).toFixed(2)} (qemu-img not fsynced)`);
    console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
    await mkdir('bench-results', { recursive: true });
    await writeFile(
      join('bench-results', 'backup.json'),
      `${JSON.stringify({ date: new Date().toISOString(), imageSize: SIZE, dataBytes: allocated, trackingBlock: BLOCK, repeats: REPEATS, machine, seconds: { full, fullSha256: fullSha, fullEveryByte, qemuImgConvertNbd: qemuNbd, qemuImgConvertNbdWriteback: qemuNbdDurable, qemuImgConvertFile: qemu, cpSparse: cp, verify, restore }, incrementals }, null, 2)}\n`,
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
