/**
 * What the backup layer needs of an image writer (qcow2 or sparse raw): guest data
 * arrives in increasing offset order; what is never written reads as zeroes (raw,
 * qcow2 without backing) or from the backing file (qcow2 overlay).
 */
import { open } from 'node:fs';
import { fdatasync } from '../core/file-io.js';

export interface ImageWriteSummary {
  /** Size of the image file on completion. */
  fileBytes: number;
  /** Guest bytes stored as data (zero clusters and holes excluded). */
  dataBytes: number;
  /** Clusters stored compressed (qcow2 only). */
  compressedClusters: number;
  /** Clusters marked as reading zeroes over a backing file (qcow2 overlays only). */
  zeroClusters: number;
}

export interface FinishOptions {
  whileSyncing?: (summary: ImageWriteSummary) => Promise<void>;
}

export interface ImageWriter {
  readonly path: string;
  readonly virtualSize: number;
  /** Allocation unit: writes start on a multiple of it. */
  readonly clusterSize: number;
  /**
   * Guest data at `offset` (a multiple of clusterSize, not before the end of the previous
   * write); the length is a multiple of clusterSize or ends at the virtual size.
   * All-zero clusters are not stored as data. One write at a time: call the next
   * one after the previous one resolved.
   */
  write(offset: number, data: Buffer): Promise<void>;
  /** write() of several ranges in increasing order, in as few system calls as the format allows. */
  writeRanges(ranges: readonly (readonly [number, Buffer])[]): Promise<void>;
  /**
   * Completes the file and makes it durable (one fdatasync) before it resolves.
   * `whileSyncing` runs alongside that fdatasync, given the summary (a backup writes
   * and fsyncs its manifest's partial file meanwhile, so the two syncs overlap); finish
   * waits for both and rejects when either failed.
   */
  finish(options?: FinishOptions): Promise<ImageWriteSummary>;
  /** Closes and removes the unfinished file. */
  abort(): Promise<void>;
}

let zeroes = Buffer.alloc(0);

/** True when every byte of buf[start, end) is zero. */
export function isZeroRange(buf: Buffer, start: number, end: number): boolean {
  const len = end - start;
  if (zeroes.length < len) zeroes = Buffer.alloc(Math.max(len, 1 << 16));
  return buf.compare(zeroes, 0, len, start, end) === 0;
}

/** Opens a new file for writing; fails with EEXIST when it exists. */
export function createExclusive(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    open(path, 'wx', 0o644, (err, fd) => (err ? reject(err) : resolve(fd)));
  });
}

/** fdatasync(fd) with options.whileSyncing(summary) alongside; waits for both, then throws the first failure. */
export async function syncAlongside(fd: number, summary: ImageWriteSummary, options: FinishOptions): Promise<void> {
  const results = await Promise.allSettled([fdatasync(fd), options.whileSyncing?.(summary)]);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}
