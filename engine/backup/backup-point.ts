/**
 * Writes one backup point of a snapshot image into a chain folder: a full image, or
 * an overlay of the parent point (incremental: the blocks whose CBT change number is
 * newer than the previous point's; differential: newer than the full's).
 */
import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { BlksnapError } from '../abi/errno.js';
import type { BlockDevice, BlockExtent } from '../core/block-device.js';
import { imageBlockHash, zeroBlockHash } from './block-hash.js';
import { changedBlockCount } from './changed-bytes.js';
import { planPoint, rememberManifest } from './chain.js';
import type { ChainCbt } from './chain.js';
import type { ImageWriteSummary, ImageWriter } from './image-writer.js';
import { BLOCK_HASH_ALGORITHM, MANIFEST_FORMAT, MANIFEST_VERSION, manifestBlockHash } from './manifest.js';
import type { DeviceIdentity, Manifest, PointKind } from './manifest.js';
import { MANIFEST_SUFFIX, fsyncPath, lockFolder, partialName, removeLeftovers, writePartialFile } from './point-files.js';
import { checkCancelled } from './progress.js';
import type { JobOptions } from './progress.js';
import { DEFAULT_CLUSTER_SIZE, Qcow2Writer } from './qcow2-writer.js';
import { SerialQueue, readAhead } from './pipeline.js';
import { RawWriter } from './raw-writer.js';
import { createSha256 } from './sha256-process.js';
import type { Sha256Stream } from './sha256-process.js';
import { toolIdentity } from './tool.js';

/**
 * Reads the snapshot image: a BlockDevice, or a function returning `length` bytes at
 * `offset` in a buffer the caller then owns (not shared with the source: the backup
 * hands it to the SHA-256 stream without copying).
 */
export type ImageReader = BlockDevice | ((offset: number, length: number) => Promise<Buffer>);

export interface BackupPointRequest extends JobOptions {
  /** The chain folder (created when missing). */
  dir: string;
  source: ImageReader;
  device: DeviceIdentity;
  /** CBT state of the take: generation id, change number, tracking block size. */
  cbt: ChainCbt;
  /** The CBT map at take: one byte (change number) per tracking block. */
  cbtMap: Uint8Array;
  kind: PointKind;
  /** Make a full backup (a new chain in the folder) when the chain cannot continue. */
  allowFull?: boolean;
  /** qcow2 (default) or raw; raw only for a full. */
  format?: 'qcow2' | 'raw';
  compress?: 'zlib' | 'zstd';
  clusterSize?: number;
  /**
   * Compute the SHA-256 of the whole image during the backup. Default false for every
   * kind: the manifest records sha256 null and the point's first verify computes it
   * from the backup (the per-block hashes, taken from the source, are the independent
   * check). True hashes the source during the backup (reading its holes' zeroes too),
   * and makes an incremental read the whole image (and copy blocks the CBT missed,
   * found by their hash); false lets an incremental read only the changed blocks and
   * carry the other block hashes over from the parent.
   */
  sha256?: boolean;
  /** Clock for the point's times and id (tests). */
  now?: () => Date;
}

export interface BackupPointResult {
  manifest: Manifest;
  /** When a full was made because the chain could not continue: why. */
  fullBecause: string | null;
  /** Files an earlier interrupted job left, removed before this one started. */
  leftoversRemoved: string[];
}

const CHUNK = 4 * 1024 * 1024;
/** Bytes read ahead of the range being hashed (at least 4 ranges, at most 64). */
const READ_AHEAD_BYTES = 16 * 1024 * 1024;
/** Batches of writes that may wait behind the hashing; a batch is CHUNK bytes or more of ranges read. */
const WRITE_QUEUE = 3;

/** A range read from an ImageReader: its bytes, and the runs the source calls holes. */
interface Span {
  /** The range's bytes; the bytes of the holes are NOT filled in (fillHoles does that). */
  data: Buffer;
  /** Absolute offsets, in order; empty for a source without extents(). */
  holes: BlockExtent[];
}

/**
 * Reads ranges of an ImageReader. A BlockDevice with extents() is asked for its holes
 * first (unless `holes` is false) and only its data runs are read, into a buffer of our
 * own (never memory the device keeps: the backup hands it to the SHA-256 stream).
 */
function spanReaderOf(
  source: ImageReader,
  alloc: (length: number) => Buffer = (n) => Buffer.allocUnsafe(n),
  holes = true,
): (offset: number, length: number) => Promise<Span> {
  if (typeof source === 'function') return async (offset, length) => ({ data: await source(offset, length), holes: [] });
  const readTo = source.readTo?.bind(source);
  const readData = readTo
    ? (offset: number, length: number, target: Buffer, at: number): Promise<void> => readTo(offset, length, target, at)
    : async (offset: number, length: number, target: Buffer, at: number): Promise<void> => {
        (await source.read(offset, length)).copy(target, at);
      };
  const extents = holes ? source.extents?.bind(source) : undefined;
  return async (offset, length) => {
    const data = alloc(length);
    const runs = extents ? await extents(offset, length) : [{ offset, length, hole: false }];
    const reads: Promise<void>[] = [];
    const holes: BlockExtent[] = [];
    for (const e of runs) {
      if (e.length <= 0) continue;
      if (e.hole) holes.push(e);
      else reads.push(readData(e.offset, e.length, data, e.offset - offset));
    }
    await Promise.all(reads);
    return { data, holes };
  };
}

/** Writes zeroes into span.data over its holes, except over [skip[0], skip[1]) pairs (absolute). */
function fillHoles(span: Span, start: number, skip: [number, number][] = []): void {
  for (const h of span.holes) {
    let at = h.offset;
    const end = h.offset + h.length;
    for (const [s, e] of skip) {
      if (e <= at || s >= end) continue;
      if (s > at) span.data.fill(0, at - start, s - start);
      at = Math.max(at, e);
    }
    if (at < end) span.data.fill(0, at - start, end - start);
  }
}

/** The read function of an ImageReader: whole bytes, holes read as zeroes (without reading them). */
export function readerOf(source: ImageReader): (offset: number, length: number) => Promise<Buffer> {
  const spans = spanReaderOf(source);
  return async (offset, length) => {
    const span = await spans(offset, length);
    fillHoles(span, offset);
    return span.data;
  };
}

/**
 * The parts of the holes made of whole units (a unit: whole clusters and whole tracking
 * blocks; the image's last, shorter unit counts as whole), absolute and in order.
 */
function wholeHoleUnits(holes: BlockExtent[], unit: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (const h of holes) {
    const s = Math.ceil(h.offset / unit) * unit;
    const end = h.offset + h.length;
    const e = end === size ? end : Math.floor(end / unit) * unit;
    if (e > s) out.push([s, e]);
  }
  return out;
}

function pointId(sequence: number, kind: PointKind, at: Date): string {
  const iso = at.toISOString(); // 2026-12-01T14:02:00.000Z
  const stamp = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}-${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
  return `${String(sequence).padStart(4, '0')}-${stamp}-${kind}`;
}

/** Guest ranges [start, end) to read: whole clusters, merged, at most CHUNK long. */
function readRanges(marked: (cluster: number) => boolean, clusters: number, clusterSize: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  const perChunk = Math.max(1, Math.floor(CHUNK / clusterSize));
  let c = 0;
  while (c < clusters) {
    if (!marked(c)) {
      c++;
      continue;
    }
    const first = c;
    while (c < clusters && marked(c) && c - first < perChunk) c++;
    out.push([first * clusterSize, Math.min(c * clusterSize, size)]);
  }
  return out;
}

export async function backupPoint(req: BackupPointRequest): Promise<BackupPointResult> {
  const size = req.device.size;
  const blockSize = req.cbt.blockSize;
  const blockCount = Math.ceil(size / blockSize);
  if (typeof req.source !== 'function' && req.source.capacity !== size) {
    throw new BlksnapError('EINVAL', `the snapshot image ${req.source.name} has ${req.source.capacity} bytes, the device ${req.device.path} ${size}`);
  }
  if (!Number.isInteger(Math.log2(blockSize)) || blockSize < 512) throw new BlksnapError('EINVAL', `tracking block size ${blockSize} is not a power of two of at least 512 bytes`);
  if (req.cbtMap.length < blockCount) throw new BlksnapError('EINVAL', `the CBT map has ${req.cbtMap.length} blocks; a ${size}-byte device needs ${blockCount}`);
  const format = req.format ?? 'qcow2';
  const clusterSize = req.clusterSize ?? DEFAULT_CLUSTER_SIZE;
  const now = req.now ?? (() => new Date());
  checkCancelled(req.signal, 'backup');

  await mkdir(req.dir, { recursive: true });
  const unlock = await lockFolder(req.dir);
  let writer: ImageWriter | null = null;
  let sha: Sha256Stream | null = null;
  let queue: SerialQueue | null = null;
  try {
    const leftoversRemoved = await removeLeftovers(req.dir);
    const plan = await planPoint({ dir: req.dir, kind: req.kind, device: req.device, cbt: req.cbt, allowFull: req.allowFull });
    const parent = plan.parent;
    const wantSha = req.sha256 ?? false;
    if (format === 'raw' && parent) throw new BlksnapError('EINVAL', 'a raw image can only hold a full backup; use qcow2 for incremental and differential points');
    const started = now();
    const sequence = (plan.points[plan.points.length - 1]?.sequence ?? 0) + 1;
    const id = pointId(sequence, plan.kind, started);
    const file = `${id}.${format}`;
    const tmpPath = join(req.dir, partialName(file));
    writer = format === 'raw'
      ? await RawWriter.create({ path: tmpPath, virtualSize: size, clusterSize })
      : await Qcow2Writer.create({
          path: tmpPath,
          virtualSize: size,
          clusterSize,
          compress: req.compress,
          backing: parent ? { file: parent.image.file, format: parent.image.format } : undefined,
        });

    // Which tracking blocks changed since the parent, and which clusters they touch.
    const changed = new Uint8Array(blockCount);
    for (let b = 0; b < blockCount; b++) {
      if (!parent || req.cbtMap[b]! > parent.cbt.changeNumber) changed[b] = 1;
    }
    // The count the manifest records (and the heatmap predicts): changed-bytes.ts
    const changedBlocks = parent ? changedBlockCount(req.cbtMap, parent.cbt.changeNumber, blockCount) : blockCount;
    const blockOfCluster = (c: number): [number, number] => [Math.floor((c * clusterSize) / blockSize), Math.floor((Math.min((c + 1) * clusterSize, size) - 1) / blockSize)];
    const clusterChanged = (c: number): boolean => {
      const [first, last] = blockOfCluster(c);
      for (let b = first; b <= last; b++) if (changed[b]) return true;
      return false;
    };

    // A full without the SHA-256 neither fills, hashes nor writes the whole units of the
    // source's holes: their blocks take the zero-block hash, their clusters stay unallocated.
    // Nothing keeps its buffers after the write (no SHA-256 stream), so they are reused.
    const skipHoles = !parent && !wantSha;
    const spare: Buffer[] = [];
    // An overlay reads only the changed blocks (without the SHA-256): those were written
    // since the parent, so they are data, and asking the source where its holes are
    // first would cost one more call per range for nothing (a hole reads as zeroes anyway).
    const read = spanReaderOf(
      req.source,
      skipHoles ? (n) => (spare.length > 0 && spare[spare.length - 1]!.length >= n ? spare.pop()!.subarray(0, n) : Buffer.allocUnsafe(n)) : undefined,
      !parent || wantSha,
    );
    const hashes: string[] = new Array<string>(blockCount);
    sha = wantSha ? createSha256() : null;
    // Read in units of whole clusters and whole tracking blocks.
    const unit = Math.max(clusterSize, blockSize);
    const units = Math.ceil(size / unit);
    const unitChanged = (u: number): boolean => (blockSize >= clusterSize ? changed[u] === 1 : clusterChanged(u));
    const ranges = readRanges(wantSha || !parent ? () => true : unitChanged, units, unit, size);
    const total = ranges.reduce((n, [s, e]) => n + e - s, 0);
    let done = 0;
    let copiedBytes = 0;
    let cbtMissedBlocks = 0;
    req.onProgress?.({ done, total });

    // Reads run READ_AHEAD_BYTES ahead of the hashing; the writes of the ranges (then their
    // SHA-256 updates and the reuse of their buffers) run behind it, in batches of at
    // least CHUNK bytes (an incremental's many small ranges: one vectored write per batch).
    const readAheadRanges = Math.min(64, Math.max(4, Math.floor(READ_AHEAD_BYTES / Math.max(1, total / Math.max(1, ranges.length)))));
    let batch: { pieces: [number, Buffer][]; data: Buffer[]; bytes: number } = { pieces: [], data: [], bytes: 0 };
    const w = writer;
    queue = new SerialQueue(WRITE_QUEUE);
    const q = queue;
    let r = 0;
    for await (const span of readAhead(ranges.length, readAheadRanges, (i) => read(ranges[i]![0], ranges[i]![1] - ranges[i]![0]))) {
      const [start, end] = ranges[r++]!;
      const data = span.data;
      checkCancelled(req.signal, 'backup');
      if (data.length !== end - start) throw new BlksnapError('EIO', `the snapshot image returned ${data.length} bytes at ${start}, not ${end - start}`);
      const skipped = skipHoles ? wholeHoleUnits(span.holes, unit, size) : [];
      fillHoles(span, start, skipped);
      const isSkipped = (s: number, e: number): boolean => skipped.some(([hs, he]) => s >= hs && e <= he);
      // Block hashes of the whole blocks inside this range; blocks the CBT calls unchanged
      // but whose content differs from the parent's are copied too.
      const missed = new Set<number>();
      for (let b = Math.ceil(start / blockSize); b * blockSize < end; b++) {
        const bEnd = Math.min((b + 1) * blockSize, size);
        if (bEnd > end) break;
        hashes[b] = isSkipped(b * blockSize, bEnd) ? zeroBlockHash(bEnd - b * blockSize) : imageBlockHash(data.subarray(b * blockSize - start, bEnd - start));
        if (parent && !changed[b] && hashes[b] !== manifestBlockHash(parent, b)) {
          missed.add(b);
          cbtMissedBlocks++;
        }
      }
      // What of this range goes into the image: [guest offset, bytes].
      const pieces: [number, Buffer][] = [];
      if (!parent) {
        // the range minus its skipped hole units (unit-aligned, so cluster-aligned)
        let at = start;
        for (const [hs, he] of [...skipped, [end, end] as [number, number]]) {
          if (hs > at) pieces.push([at, data.subarray(at - start, hs - start)]);
          at = Math.max(at, he);
        }
        copiedBytes += data.length;
      } else {
        const write = (c: number): boolean => {
          if (clusterChanged(c)) return true;
          const [first, last] = blockOfCluster(c);
          for (let b = first; b <= last; b++) if (missed.has(b)) return true;
          return false;
        };
        const firstCluster = start / clusterSize;
        for (const [s, e] of readRanges((c) => write(c + firstCluster), Math.ceil((end - start) / clusterSize), clusterSize, end - start)) {
          pieces.push([start + s, data.subarray(s, e)]);
          copiedBytes += e - s;
        }
      }
      batch.pieces.push(...pieces);
      batch.data.push(data);
      batch.bytes += end - start;
      // progress: the bytes read and hashed (their writes follow within WRITE_QUEUE batches)
      done += end - start;
      req.onProgress?.({ done, total });
      if (batch.bytes < CHUNK && r < ranges.length) continue;
      const { pieces: toWrite, data: buffers } = batch;
      batch = { pieces: [], data: [], bytes: 0 };
      await q.push(async () => {
        await w.writeRanges(toWrite);
        for (const b of buffers) {
          // Last use of the buffer: its memory moves to the SHA-256 worker without a copy.
          await sha?.update(b, true);
          if (skipHoles) spare.push(b);
        }
      });
    }
    await q.drain();
    queue = null;
    // An incremental's list: the parent's, with the hashes of the blocks read written over it.
    let blockHashes: string;
    if (parent) {
      const list = Buffer.from(parent.hashes.blocks, 'latin1');
      hashes.forEach((h, b) => list.write(h, b * 16, 'latin1'));
      blockHashes = list.toString('latin1');
    } else {
      blockHashes = hashes.join('');
    }
    checkCancelled(req.signal, 'backup');
    const digest = sha ? await sha.digest() : null;
    const manifestName = `${id}${MANIFEST_SUFFIX}`;
    const manifestOf = (summary: ImageWriteSummary): Manifest => ({
      format: MANIFEST_FORMAT,
      formatVersion: MANIFEST_VERSION,
      id,
      sequence,
      kind: plan.kind,
      parent: parent?.id ?? null,
      full: plan.full?.id ?? id,
      image: { file, format, clusterSize, compression: req.compress ?? 'none', fileBytes: summary.fileBytes },
      device: req.device,
      cbt: { generationId: req.cbt.generationId, changeNumber: req.cbt.changeNumber, blockSize, blockCount },
      hashes: { blockAlgorithm: BLOCK_HASH_ALGORITHM, blocks: blockHashes, sha256: digest },
      sizes: { deviceBytes: size, copiedBytes: parent ? copiedBytes : summary.dataBytes, changedBlocks, cbtMissedBlocks },
      times: { startedAt: started.toISOString(), finishedAt: now().toISOString() },
      tool: toolIdentity(),
    });
    // The image's final fdatasync and the manifest's partial file (written and fsynced)
    // run side by side: both are ".partial-" files until the renames below. Then the
    // image is renamed, the manifest last, and one fsync of the folder makes both
    // renames durable (in that order: the file systems this runs on journal the
    // operations of one folder in order, so a crash never keeps the manifest's rename
    // without the image's).
    let written: { manifest: Manifest; partial: string } | undefined;
    await writer.finish({
      whileSyncing: async (summary) => {
        const m = manifestOf(summary);
        written = { manifest: m, partial: await writePartialFile(req.dir, manifestName, `${JSON.stringify(m, null, 1)}\n`) };
      },
    });
    writer = null;
    if (!written) throw new BlksnapError('EIO', `the manifest of ${id} was not written`);
    checkCancelled(req.signal, 'backup');
    await rename(tmpPath, join(req.dir, file));
    await rename(written.partial, join(req.dir, manifestName));
    // the manifest's identity for the cache (a stat) needs no wait for the folder's fsync
    await Promise.all([fsyncPath(req.dir, true), rememberManifest(join(req.dir, manifestName), written.manifest)]);
    return { manifest: written.manifest, fullBecause: plan.fullBecause, leftoversRemoved };
  } catch (err) {
    await queue?.drain().catch(() => undefined);
    await writer?.abort();
    // An image renamed but without its manifest is removed here (or by the next run).
    await removeLeftovers(req.dir).catch(() => undefined);
    throw err;
  } finally {
    await sha?.close();
    await unlock();
  }
}
