/**
 * The snapshot image of one device (seed 001, snapimage.c): reads give the device
 * content at the moment of take (plus image writes); writes go to the difference
 * storage (copy-on-write of the chunk first) and mark both CBT tables.
 */
import { BlksnapError } from '../abi/errno.js';
import { SECTOR_SIZE } from '../abi/types.js';
import type { BlockDevice, BlockExtent, ChangeMap } from './block-device.js';
import type { DiffArea } from './diff-area.js';
import { asBuffer, checkRange, checkTarget, ZERO_BUFFER_SIZE } from './io-range.js';
import type { Tracker } from './tracker.js';

export class SnapshotImage implements BlockDevice {
  readonly readOnly = false;
  private inflight = 0;
  private released = false;
  private drainWaiters: (() => void)[] = [];

  constructor(
    readonly name: string,
    readonly deviceName: string,
    readonly snapshotId: string,
    readonly capacity: number,
    readonly logicalBlockSize: number,
    readonly physicalBlockSize: number,
    private readonly tracker: Tracker,
    private readonly diffArea: DiffArea,
  ) {}

  private async run<T>(op: () => Promise<T>): Promise<T> {
    if (this.released) throw new BlksnapError('ENODEV', `snapshot image ${this.name} was released`);
    this.inflight++;
    try {
      return await op();
    } finally {
      this.inflight--;
      if (this.inflight === 0 && this.drainWaiters.length > 0) {
        for (const f of this.drainWaiters.splice(0)) f();
      }
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this.name, this.capacity, offset, length);
    return this.run(() => this.diffArea.imageRead(offset, length));
  }

  async readTo(offset: number, length: number, target: Buffer, targetOffset: number): Promise<void> {
    checkRange(this.name, this.capacity, offset, length);
    checkTarget(this.name, target, targetOffset, length);
    await this.run(() => this.diffArea.imageReadInto(offset, length, target, targetOffset));
  }

  /**
   * readTo(), synchronously, when nothing has to wait (DiffArea.imageReadIntoNow:
   * no chunk of the range busy, every byte in memory or cached); else false and
   * the caller uses readTo().
   */
  readToNow(offset: number, length: number, target: Buffer, targetOffset: number): boolean {
    if (this.released) return false;
    checkRange(this.name, this.capacity, offset, length);
    checkTarget(this.name, target, targetOffset, length);
    return this.diffArea.imageReadIntoNow(offset, length, target, targetOffset);
  }

  /** Holes of the original, except the chunks held in the difference storage (data). */
  async extents(offset: number, length: number, maxRuns?: number): Promise<BlockExtent[]> {
    checkRange(this.name, this.capacity, offset, length);
    return this.run(() => this.diffArea.imageExtents(offset, length, maxRuns));
  }

  /** extents(), synchronously (chunk states and the original's lseek; nothing waits). */
  extentsNow(offset: number, length: number, maxRuns?: number): BlockExtent[] {
    if (this.released) throw new BlksnapError('ENODEV', `snapshot image ${this.name} was released`);
    checkRange(this.name, this.capacity, offset, length);
    return this.diffArea.imageExtentsNow(offset, length, maxRuns);
  }

  /** The CBT table frozen at take (cbt_map->read_map), as readcbtmap gives it. */
  changeMap(): ChangeMap | undefined {
    const cbt = this.tracker.cbt;
    if (cbt.isCorrupted) return undefined;
    return {
      blockBytes: 2 ** cbt.blkSizeShift,
      numbers: cbt.readMap,
      newest: cbt.snapNumberPrevious,
      generationId: cbt.generationId,
    };
  }

  private async writeBuffer(offset: number, buf: Buffer): Promise<void> {
    if (this.diffArea.corrupted) throw new BlksnapError('EIO', `the snapshot image ${this.name} is corrupted`);
    try {
      this.tracker.cbt.setBoth(offset / SECTOR_SIZE, buf.length / SECTOR_SIZE);
    } catch {
      // snapimage_submit_bio() ignores the result of cbt_map_set_both()
    }
    await this.diffArea.imageWrite(offset, buf);
  }

  async write(offset: number, data: Uint8Array, _options?: { fua?: boolean }): Promise<void> {
    checkRange(this.name, this.capacity, offset, data.byteLength);
    const buf = asBuffer(data);
    await this.run(() => this.writeBuffer(offset, buf));
  }

  /** The image lives in the difference storage, which does not outlive the engine: nothing to flush. */
  async flush(): Promise<void> {
    if (this.released) throw new BlksnapError('ENODEV', `snapshot image ${this.name} was released`);
  }

  async discard(offset: number, length: number): Promise<void> {
    await this.writeZeroes(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    checkRange(this.name, this.capacity, offset, length);
    await this.run(async () => {
      for (let done = 0; done < length; done += ZERO_BUFFER_SIZE) {
        const n = Math.min(ZERO_BUFFER_SIZE, length - done);
        await this.writeBuffer(offset + done, Buffer.alloc(n));
      }
    });
  }

  /** snapimage_free(): new I/O fails with ENODEV; resolves when in-flight I/O is done. */
  async release(): Promise<void> {
    this.released = true;
    if (this.inflight === 0) return;
    await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }
}
