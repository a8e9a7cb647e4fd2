/**
 * Sparse raw image writer: data in increasing offset order; all-zero clusters are
 * skipped (left as holes) and the file is sized to the image at the end. Written
 * back to disk in the background while data arrives (writeback.ts).
 */
import { unlink } from 'node:fs/promises';
import { BlksnapError } from '../abi/errno.js';
import { closeFd, ftruncate, writevFull } from '../core/file-io.js';
import { createExclusive, isZeroRange, syncAlongside } from './image-writer.js';
import { Writeback } from './writeback.js';
import type { FinishOptions, ImageWriteSummary, ImageWriter } from './image-writer.js';

export interface RawWriterOptions {
  /** The file to create; it must not exist. */
  path: string;
  virtualSize: number;
  /** Granularity of hole detection; 64 KiB by default. */
  clusterSize?: number;
}

export class RawWriter implements ImageWriter {
  readonly path: string;
  readonly virtualSize: number;
  readonly clusterSize: number;
  private fd: number | null;
  private readonly writeback: Writeback;
  private nextGuest = 0;
  private dataBytes = 0;
  private finished = false;

  private constructor(opts: RawWriterOptions, fd: number) {
    this.path = opts.path;
    this.virtualSize = opts.virtualSize;
    this.clusterSize = opts.clusterSize ?? 65536;
    this.fd = fd;
    this.writeback = new Writeback(fd);
  }

  static async create(opts: RawWriterOptions): Promise<RawWriter> {
    if (!Number.isSafeInteger(opts.virtualSize) || opts.virtualSize <= 0) {
      throw new BlksnapError('EINVAL', `image size ${opts.virtualSize} is not a positive number of bytes`);
    }
    return new RawWriter(opts, await createExclusive(opts.path));
  }

  async write(offset: number, data: Buffer): Promise<void> {
    if (this.fd === null) throw new BlksnapError('EBADF', `${this.path}: the image writer is closed`);
    const cs = this.clusterSize;
    const end = offset + data.length;
    if (offset % cs !== 0 || offset < this.nextGuest || end > this.virtualSize || (data.length % cs !== 0 && end !== this.virtualSize)) {
      throw new BlksnapError('EINVAL', `${this.path}: write of ${data.length} bytes at ${offset} is not cluster-aligned, in order and inside the image`);
    }
    this.nextGuest = end;
    // Runs of non-zero clusters, each written with one call.
    let runStart = -1;
    const runs: [number, number][] = [];
    for (let at = 0; at <= data.length; at += cs) {
      const zero = at === data.length || isZeroRange(data, at, Math.min(at + cs, data.length));
      if (!zero && runStart < 0) runStart = at;
      if (zero && runStart >= 0) {
        runs.push([runStart, at]);
        runStart = -1;
      }
    }
    for (const [s, e] of runs) {
      await writevFull(this.fd, [data.subarray(s, e)], offset + s);
      this.dataBytes += e - s;
      this.writeback.wrote(e - s);
    }
  }

  async writeRanges(ranges: readonly (readonly [number, Buffer])[]): Promise<void> {
    for (const [offset, data] of ranges) await this.write(offset, data);
  }

  async finish(options: FinishOptions = {}): Promise<ImageWriteSummary> {
    if (this.fd === null) throw new BlksnapError('EBADF', `${this.path}: the image writer is closed`);
    await ftruncate(this.fd, this.virtualSize);
    await this.writeback.settle();
    const summary: ImageWriteSummary = { fileBytes: this.virtualSize, dataBytes: this.dataBytes, compressedClusters: 0, zeroClusters: 0 };
    await syncAlongside(this.fd, summary, options);
    const fd = this.fd;
    this.fd = null;
    await closeFd(fd);
    this.finished = true;
    return summary;
  }

  async abort(): Promise<void> {
    await this.writeback.quiet();
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) await closeFd(fd);
    if (!this.finished) await unlink(this.path).catch(() => undefined);
  }
}
