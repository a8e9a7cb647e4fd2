/**
 * Streaming qcow2 (version 3) writer. Data clusters are appended in the order they
 * arrive, right after the header cluster; the L2 tables, the L1 table, the refcount
 * blocks and the refcount table are written after the last data cluster, and the
 * header cluster is written last (until then cluster 0 is a hole reading zeroes, so
 * an interrupted file is not a qcow2 image at all). While data arrives the file is
 * written back to disk in the background (writeback.ts); finish() ends with one
 * fdatasync of the whole file, header included.
 *
 * Layout facts (qemu docs/interop/qcow2.txt): big-endian; L2 entry bit 63 "copied"
 * (refcount 1), bit 62 compressed, bit 0 reads-as-zero; a compressed entry holds a
 * byte offset and, from bit 62 - (cluster_bits - 8), the number of 512-byte sectors
 * beyond the first one that the raw-deflate data touches; 16-bit refcounts.
 */
import { promisify } from 'node:util';
import { deflateRaw } from 'node:zlib';
import { BlksnapError } from '../abi/errno.js';
import { closeFd, writeFull, writevFull } from '../core/file-io.js';
import { Writeback } from './writeback.js';
import { createExclusive, isZeroRange, syncAlongside } from './image-writer.js';
import type { FinishOptions, ImageWriteSummary, ImageWriter } from './image-writer.js';
import {
  EXT_BACKING_FORMAT, L2_COMPRESSED, MAX_BACKING_NAME, MAX_CLUSTER_BITS, MIN_CLUSTER_BITS, REFCOUNT_ORDER,
  INCOMPAT_COMPRESSION_TYPE, V3_HEADER_LENGTH, compressedShift, encodeExtensions, writeHeader,
} from './qcow2-format.js';
import { loadZstd, zstdCompress } from './zstd.js';
import type { BackingFormat } from './qcow2-format.js';
import { unlink } from 'node:fs/promises';

const deflateRawAsync = promisify(deflateRaw);

export const DEFAULT_CLUSTER_SIZE = 64 * 1024;
/** qemu inflates with a 4 KiB window (windowBits -12), so data must be deflated with one no larger. */
const DEFLATE_WINDOW_BITS = 12;
const TWO32 = 2 ** 32;

export interface Qcow2WriterOptions {
  /** The file to create; it must not exist. */
  path: string;
  /** Guest size in bytes (a multiple of 512). */
  virtualSize: number;
  /** A power of two from 512 B to 2 MiB; 64 KiB by default. */
  clusterSize?: number;
  /** Backing file as stored in the header (relative paths resolve against this file's folder). */
  backing?: { file: string; format: BackingFormat };
  /**
   * Store data clusters compressed when that makes them smaller: zlib (raw deflate),
   * or zstd (compression type 1 in the header, which qemu 5.1 and later read).
   */
  compress?: 'zlib' | 'zstd';
  /** zlib level 1-9 (6 by default), zstd level 1-19 (3 by default). */
  compressionLevel?: number;
}

/** Adds a buffer to a write's list, merged with the previous one when it continues it in memory. */
function appendPart(parts: Buffer[], chunk: Buffer): void {
  const last = parts[parts.length - 1];
  if (last && last.buffer === chunk.buffer && last.byteOffset + last.length === chunk.byteOffset) {
    parts[parts.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + chunk.length);
  } else {
    parts.push(chunk);
  }
}

export class Qcow2Writer implements ImageWriter {
  readonly path: string;
  readonly virtualSize: number;
  readonly clusterSize: number;
  private readonly clusterBits: number;
  private readonly l2Entries: number;
  private readonly backing: { file: string; format: BackingFormat } | undefined;
  private readonly compress: 'zlib' | 'zstd' | null;
  private readonly level: number;
  private fd: number | null;
  private readonly writeback: Writeback;
  /** Next free byte in the file (data area). */
  private cursor: number;
  private nextGuest = 0;
  /** L2 tables by L1 index, in their on-disk (big-endian) form. */
  private readonly l2 = new Map<number, Buffer>();
  /** Host clusters touched by compressed data, with how many compressed clusters touch each. */
  private readonly sharedRefs = new Map<number, number>();
  private dataBytes = 0;
  private compressedClusters = 0;
  private zeroClusters = 0;
  private finished = false;

  private constructor(opts: Qcow2WriterOptions, clusterBits: number, fd: number) {
    this.path = opts.path;
    this.virtualSize = opts.virtualSize;
    this.clusterBits = clusterBits;
    this.clusterSize = 2 ** clusterBits;
    this.l2Entries = this.clusterSize / 8;
    this.backing = opts.backing;
    this.compress = opts.compress ?? null;
    this.level = opts.compressionLevel ?? (opts.compress === 'zstd' ? 3 : 6);
    this.fd = fd;
    this.writeback = new Writeback(fd);
    this.cursor = this.clusterSize; // cluster 0 is the header
  }

  static async create(opts: Qcow2WriterOptions): Promise<Qcow2Writer> {
    const clusterSize = opts.clusterSize ?? DEFAULT_CLUSTER_SIZE;
    const clusterBits = Math.log2(clusterSize);
    if (!Number.isInteger(clusterBits) || clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
      throw new BlksnapError('EINVAL', `qcow2 cluster size ${clusterSize} is not a power of two from 512 bytes to 2 MiB`);
    }
    if (!Number.isSafeInteger(opts.virtualSize) || opts.virtualSize <= 0 || opts.virtualSize % 512 !== 0) {
      throw new BlksnapError('EINVAL', `image size ${opts.virtualSize} is not a positive multiple of 512 bytes`);
    }
    if (opts.backing && Buffer.byteLength(opts.backing.file) > MAX_BACKING_NAME) {
      throw new BlksnapError('ENAMETOOLONG', `backing file name is longer than ${MAX_BACKING_NAME} bytes`);
    }
    if (opts.compress === 'zstd') await loadZstd();
    // Cluster 0 stays a hole (zeroes) until finish(): an unfinished file has no qcow2 magic.
    return new Qcow2Writer(opts, clusterBits, await createExclusive(opts.path));
  }

  write(offset: number, data: Buffer): Promise<void> {
    return this.writeRanges([[offset, data]]);
  }

  /** Several ranges (in increasing order) appended with one vectored write. */
  async writeRanges(ranges: readonly (readonly [number, Buffer])[]): Promise<void> {
    const fd = this.openFd();
    const cs = this.clusterSize;
    const parts: Buffer[] = [];
    const start = this.cursor;
    const pending: { guest: number; chunk: Buffer }[] = [];
    for (const [offset, data] of ranges) {
      const end = offset + data.length;
      if (offset % cs !== 0 || offset < this.nextGuest || end > this.virtualSize || (data.length % cs !== 0 && end !== this.virtualSize)) {
        throw new BlksnapError('EINVAL', `${this.path}: write of ${data.length} bytes at ${offset} is not cluster-aligned, in order and inside the image`);
      }
      this.nextGuest = end;
      for (let at = 0; at < data.length; at += cs) {
        const len = Math.min(cs, data.length - at);
        const guest = (offset + at) / cs;
        if (isZeroRange(data, at, at + len)) {
          if (this.backing) {
            this.setEntry(guest, 0, 1); // reads as zeroes, whatever the backing file holds
            this.zeroClusters++;
          }
          continue;
        }
        let chunk = data.subarray(at, at + len);
        if (len < cs) chunk = Buffer.concat([chunk, Buffer.alloc(cs - len)]);
        pending.push({ guest, chunk });
      }
    }
    if (pending.length === 0) return;
    const packed =
      this.compress === 'zlib'
        ? await Promise.all(pending.map((p) => deflateRawAsync(p.chunk, { level: this.level, windowBits: DEFLATE_WINDOW_BITS })))
        : this.compress === 'zstd'
          ? pending.map((p) => zstdCompress(p.chunk, this.level))
          : null;
    for (let i = 0; i < pending.length; i++) {
      const { guest, chunk } = pending[i]!;
      const z = packed?.[i];
      if (z && z.length <= cs - 512) {
        this.placeCompressed(guest, z);
        parts.push(z);
        continue;
      }
      const aligned = Math.ceil(this.cursor / cs) * cs;
      if (aligned > this.cursor) parts.push(Buffer.alloc(aligned - this.cursor));
      this.setEntry(guest, aligned, 0, true);
      appendPart(parts, chunk);
      this.cursor = aligned + cs;
      this.dataBytes += cs;
    }
    await writevFull(fd, parts, start);
    this.writeback.wrote(this.cursor - start);
  }

  private placeCompressed(guest: number, z: Buffer): void {
    const off = this.cursor;
    const firstSector = Math.floor(off / 512);
    const extraSectors = Math.floor((off + z.length - 1) / 512) - firstSector;
    const entry = L2_COMPRESSED | (BigInt(extraSectors) << BigInt(compressedShift(this.clusterBits))) | BigInt(off);
    this.l2Table(guest).writeBigUInt64BE(entry, (guest % this.l2Entries) * 8);
    const lastByte = (firstSector + extraSectors + 1) * 512 - 1;
    for (let c = Math.floor(off / this.clusterSize); c <= Math.floor(lastByte / this.clusterSize); c++) {
      this.sharedRefs.set(c, (this.sharedRefs.get(c) ?? 0) + 1);
    }
    this.cursor += z.length;
    this.compressedClusters++;
    this.dataBytes += z.length;
  }

  private l2Table(guest: number): Buffer {
    const l1 = Math.floor(guest / this.l2Entries);
    let t = this.l2.get(l1);
    if (!t) {
      t = Buffer.alloc(this.clusterSize);
      this.l2.set(l1, t);
    }
    return t;
  }

  /** Writes an L2 entry: a host offset (with the "copied" flag when set) or'ed with low flag bits. */
  private setEntry(guest: number, hostOffset: number, lowBits: number, copied = false): void {
    const t = this.l2Table(guest);
    const at = (guest % this.l2Entries) * 8;
    const hi = Math.floor(hostOffset / TWO32);
    t.writeUInt32BE((copied ? (hi | 0x80000000) : hi) >>> 0, at);
    t.writeUInt32BE(((hostOffset % TWO32) + lowBits) >>> 0, at + 4);
  }

  async finish(options: FinishOptions = {}): Promise<ImageWriteSummary> {
    const fd = this.openFd();
    const cs = this.clusterSize;
    const dataEnd = Math.ceil(this.cursor / cs); // in clusters
    const l1Size = Math.ceil(this.virtualSize / (cs * this.l2Entries));
    const l1Clusters = Math.ceil((l1Size * 8) / cs);
    const l1Indexes = [...this.l2.keys()].sort((a, b) => a - b);
    const base = dataEnd + l1Indexes.length + l1Clusters;
    const perBlock = (cs * 8) / 2 ** REFCOUNT_ORDER;
    let total = base;
    const refBlocks = (clusters: number): number => Math.ceil(clusters / perBlock);
    const refTableClusters = (clusters: number): number => Math.ceil((refBlocks(clusters) * 8) / cs);
    while (base + refBlocks(total) + refTableClusters(total) !== total) total = base + refBlocks(total) + refTableClusters(total);
    const rb = refBlocks(total);
    const rt = refTableClusters(total);
    const l1 = Buffer.alloc(l1Clusters * cs);
    const parts: Buffer[] = [];
    if (dataEnd * cs > this.cursor) parts.push(Buffer.alloc(dataEnd * cs - this.cursor));
    let at = dataEnd;
    for (const index of l1Indexes) {
      const hi = Math.floor((at * cs) / TWO32);
      l1.writeUInt32BE((hi | 0x80000000) >>> 0, index * 8);
      l1.writeUInt32BE((at * cs) % TWO32, index * 8 + 4);
      parts.push(this.l2.get(index)!);
      at++;
    }
    const l1Offset = at * cs;
    parts.push(l1);
    at += l1Clusters;
    const refBlocksAt = at;
    const refTableAt = at + rb;
    const refTable = Buffer.alloc(rt * cs);
    for (let j = 0; j < rb; j++) {
      const block = Buffer.alloc(cs);
      const first = j * perBlock;
      const count = Math.min(perBlock, total - first);
      for (let k = 0; k < count; k++) block[2 * k + 1] = 1;
      for (const [cluster, refs] of this.sharedRefs) {
        if (cluster >= first && cluster < first + perBlock) block.writeUInt16BE(refs, 2 * (cluster - first));
      }
      parts.push(block);
      refTable.writeBigUInt64BE(BigInt((refBlocksAt + j) * cs), 8 * j);
    }
    parts.push(refTable);
    await writevFull(fd, parts, this.cursor);
    await this.writeback.settle();

    const cluster0 = Buffer.alloc(cs);
    const exts = this.backing ? [{ type: EXT_BACKING_FORMAT, data: Buffer.from(this.backing.format) }] : [];
    const extBytes = encodeExtensions(exts);
    extBytes.copy(cluster0, V3_HEADER_LENGTH);
    const nameAt = V3_HEADER_LENGTH + extBytes.length;
    const name = this.backing ? Buffer.from(this.backing.file) : Buffer.alloc(0);
    if (nameAt + name.length > cs) throw new BlksnapError('ENAMETOOLONG', `${this.path}: the backing file name does not fit the header cluster`);
    name.copy(cluster0, nameAt);
    writeHeader(cluster0, {
      version: 3,
      backingFileOffset: this.backing ? nameAt : 0,
      backingFileSize: name.length,
      clusterBits: this.clusterBits,
      virtualSize: this.virtualSize,
      cryptMethod: 0,
      l1Size,
      l1TableOffset: l1Offset,
      refcountTableOffset: refTableAt * cs,
      refcountTableClusters: rt,
      nbSnapshots: 0,
      snapshotsOffset: 0,
      incompatibleFeatures: this.compress === 'zstd' ? INCOMPAT_COMPRESSION_TYPE : 0n,
      compatibleFeatures: 0n,
      autoclearFeatures: 0n,
      refcountOrder: REFCOUNT_ORDER,
      headerLength: V3_HEADER_LENGTH,
      compressionType: this.compress === 'zstd' ? 1 : 0,
    });
    await writeFull(fd, cluster0, 0, cs, 0);
    const summary: ImageWriteSummary = {
      fileBytes: total * cs,
      dataBytes: this.dataBytes,
      compressedClusters: this.compressedClusters,
      zeroClusters: this.zeroClusters,
    };
    // One sync of everything: until the caller renames the file it is a ".partial-"
    // one, so a crash before this returns leaves nothing that looks like a point.
    await syncAlongside(fd, summary, options);
    await this.closeOnce();
    this.finished = true;
    return summary;
  }

  async abort(): Promise<void> {
    await this.writeback.quiet();
    await this.closeOnce();
    if (!this.finished) await unlink(this.path).catch(() => undefined);
  }

  private openFd(): number {
    if (this.fd === null) throw new BlksnapError('EBADF', `${this.path}: the image writer is closed`);
    return this.fd;
  }

  private async closeOnce(): Promise<void> {
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) await closeFd(fd);
  }
}
