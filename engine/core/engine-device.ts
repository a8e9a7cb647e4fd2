/**
 * An engine device: the original block device as seen through the engine. Every
 * write (including write-zeroes and discard, which are writes for the block layer)
 * passes the device's I/O gate, is recorded in the CBT map when the tracker is
 * attached (tracker_submit_bio()), and is preceded by copy-on-write of the chunks
 * it overwrites while a snapshot is taken.
 */
import { BlksnapError } from '../abi/errno.js';
import { SECTOR_SIZE } from '../abi/types.js';
import { IoGate } from './async-lock.js';
import type { BlockDevice, BlockExtent, ChangeMap, ChangeMarks, FileWriteStream, FileWriteTarget, LiveFileRange } from './block-device.js';
import type { ChunkCopies } from './diff-area.js';
import type { FileBlockDevice } from './file-block-device.js';
import { total } from './file-io.js';
import { asBuffer, checkRange, checkTarget } from './io-range.js';
import type { Tracker } from './tracker.js';

export class EngineDevice implements BlockDevice {
  readonly gate = new IoGate();
  tracker: Tracker | null = null;
  removed = false;
  /** Reads and flushes running (writes are counted by the gate). */
  private untracked = 0;
  private untrackedWaiters: (() => void)[] = [];

  constructor(
    readonly raw: FileBlockDevice,
    readonly devMajor: number,
    readonly devMinor: number,
  ) {}

  get name(): string {
    return this.raw.name;
  }
  get path(): string {
    return this.raw.path;
  }
  get capacity(): number {
    return this.raw.capacity;
  }
  get logicalBlockSize(): number {
    return this.raw.logicalBlockSize;
  }
  get physicalBlockSize(): number {
    return this.raw.physicalBlockSize;
  }
  get readOnly(): boolean {
    return false;
  }

  private checkOpen(): void {
    if (this.removed) throw new BlksnapError('ENODEV', `device ${this.name} was removed from the engine`);
  }

  /** Runs a read or flush, counted so that the file is not closed under it. */
  private async counted<T>(op: () => Promise<T>): Promise<T> {
    this.untracked++;
    try {
      return await op();
    } finally {
      this.untracked--;
      if (this.untracked === 0 && this.untrackedWaiters.length > 0) {
        for (const f of this.untrackedWaiters.splice(0)) f();
      }
    }
  }

  /**
   * Marks the device removed and closes its file once the reads and flushes in
   * flight are done: a descriptor closed under them could be reused by the next
   * file opened, and they would read that file. Call with the gate frozen or
   * writes drained (writes check `removed` inside the gate).
   */
  async remove(): Promise<void> {
    this.removed = true;
    this.tracker = null;
    if (this.untracked > 0) await new Promise<void>((resolve) => this.untrackedWaiters.push(resolve));
    await this.raw.close();
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.checkOpen();
    checkRange(this.name, this.capacity, offset, length);
    const buf = Buffer.allocUnsafe(length);
    if (length > 0) await this.counted(() => this.raw.readInto(buf, 0, length, offset));
    return buf;
  }

  async readTo(offset: number, length: number, target: Buffer, targetOffset: number): Promise<void> {
    this.checkOpen();
    checkRange(this.name, this.capacity, offset, length);
    checkTarget(this.name, target, targetOffset, length);
    if (length > 0) await this.counted(() => this.raw.readInto(target, targetOffset, length, offset));
  }

  /** From the page cache without waiting (FileBlockDevice.readToNow), else false. */
  readToNow(offset: number, length: number, target: Buffer, targetOffset: number): boolean {
    this.checkOpen();
    checkRange(this.name, this.capacity, offset, length);
    checkTarget(this.name, target, targetOffset, length);
    return length === 0 || this.raw.readNowUnchecked(target, targetOffset, length, offset);
  }

  /** Reads come straight from the raw device, so its bytes are the file's (FileBlockDevice.liveFileRange, which checks the range). */
  liveFileRange(offset: number, length: number): LiveFileRange | null {
    this.checkOpen();
    return this.raw.liveFileRange(offset, length);
  }

  /**
   * The write path of write() done synchronously, when nothing in it has to
   * wait: the gate is open, no chunk it touches needs copy-on-write first, and
   * the raw device's policy allows an inline write of this size. Else false,
   * with nothing done. Tracking and the gate are as in submitWrite().
   */
  writeNow(offset: number, data: readonly Buffer[]): boolean {
    this.checkOpen();
    const length = total(data);
    checkRange(this.name, this.capacity, offset, length);
    if (length === 0) return true;
    if (this.gate.frozen || !this.raw.inlineWrites.allows(length)) return false;
    const tracker = this.tracker;
    const da = tracker?.diffArea;
    if (da && da.needsCow(offset, length)) return false;
    this.gate.enterNow();
    try {
      if (tracker) recordWrite(tracker, offset, length);
      this.raw.writeNowUnchecked(offset, data);
    } finally {
      this.gate.leave();
    }
    return true;
  }

  /**
   * A write the caller makes itself into the image file (BlockDevice.fileWriteTarget):
   * taken when writeNow() would take it, whatever its size, and also where
   * chunks of the range still need copy-on-write, when the difference area
   * can hand those copies to the caller at once (DiffArea.takeCopies: in-kernel
   * copies, the chunks locked and their regions given until end()). It holds
   * the gate until end(); a freeze asks it to give way (onFreeze), and waits
   * for its end. The change map records it at end(), once written.
   */
  fileWriteTarget(offset: number, length: number, onFreeze: () => void): FileWriteTarget | null {
    if (this.removed || length === 0 || this.gate.frozen) return null;
    checkRange(this.name, this.capacity, offset, length);
    const tracker = this.tracker;
    const da = tracker?.diffArea;
    let cow: ChunkCopies | null = null;
    if (da && da.needsCow(offset, length)) {
      // With a corrupted map submitWrite() makes no copy: that odd case goes its way.
      if (tracker!.cbt.isCorrupted) return null;
      // A writer or reader that waits for one of its chunks asks it to give way, as a freeze does.
      cow = da.takeCopies(offset, length, onFreeze);
      if (cow === null) return null;
    }
    const range = this.raw.liveFileRange(offset, length);
    if (range === null) {
      cow?.end(false, false);
      return null;
    }
    const leave = this.gate.enterNowYielding(onFreeze);
    let ended = false;
    return {
      fd: range.fd,
      position: range.position,
      ...(cow === null ? {} : { copies: cow.copies }),
      streamable: !da || (da.handsOutCopies && !tracker!.cbt.isCorrupted),
      end: (written, copyFailed) => {
        if (ended) return;
        ended = true;
        cow?.end(written, copyFailed === true);
        if (written && tracker) recordWrite(tracker, offset, length);
        leave();
      },
    };
  }

  /**
   * A run of plain writes the caller makes itself into the image file
   * (BlockDevice.fileWriteStream). It holds the gate until end(); a freeze (a
   * take, the tracker's attach or detach, the device's removal, a snapshot's
   * release: everything that changes what a write must do) asks it to give
   * way and waits for its end, so the table and number it marks, and the
   * difference area it copies into, stay those of the tracker until then. A
   * corrupted map is not marked (as recordWrite()). While a snapshot is
   * taken, the difference area hands out a window of chunks from `next` on
   * (DiffArea.takeWindow) for the caller to copy on write; none where it
   * cannot (then no stream), or where the map is corrupted (submitWrite()
   * then makes no copy: that odd case goes its way).
   */
  fileWriteStream(onFreeze: () => void, next = 0): FileWriteStream | null {
    if (this.removed || this.gate.frozen) return null;
    const tracker = this.tracker;
    const cbt = tracker?.cbt;
    const da = tracker?.diffArea;
    if (da && (da.corrupted || cbt!.isCorrupted)) return null;
    const range = this.raw.liveFileRange(0, this.capacity);
    if (range === null) return null;
    const window = da ? da.takeWindow(next, onFreeze) : null;
    if (da && window === null) return null;
    const marks: ChangeMarks | null =
      cbt === undefined || cbt.isCorrupted ? null : { table: cbt.writeMap, shift: cbt.blkSizeShift, number: cbt.snapNumberActive & 0xff };
    const leave = this.gate.enterNowYielding(onFreeze);
    let ended = false;
    return {
      fd: range.fd,
      base: range.position,
      size: this.capacity,
      marks,
      cow: window === null ? null : window.cow,
      end: () => {
        if (ended) return;
        ended = true;
        window?.end();
        leave();
      },
    };
  }

  /** The image file's holes (a write may land between this answer and its use, as on any live device). */
  async extents(offset: number, length: number, maxRuns?: number): Promise<BlockExtent[]> {
    this.checkOpen();
    return this.counted(() => this.raw.extents(offset, length, maxRuns));
  }

  /** extents(), synchronously (the file's lseek; nothing runs meanwhile, so no count is needed). */
  extentsNow(offset: number, length: number, maxRuns?: number): BlockExtent[] {
    this.checkOpen();
    return this.raw.extentsNow(offset, length, maxRuns);
  }

  /** The live CBT write table (cbt_map->write_map), while the device is tracked. */
  changeMap(): ChangeMap | undefined {
    const cbt = this.tracker?.cbt;
    if (cbt === undefined || cbt.isCorrupted) return undefined;
    return {
      blockBytes: 2 ** cbt.blkSizeShift,
      numbers: cbt.writeMap,
      newest: cbt.snapNumberActive,
      generationId: cbt.generationId,
    };
  }

  async write(offset: number, data: Uint8Array, options?: { fua?: boolean }): Promise<void> {
    this.checkOpen();
    checkRange(this.name, this.capacity, offset, data.byteLength);
    const buf = asBuffer(data);
    const fua = options?.fua === true;
    await this.submitWrite(offset, buf.length, () => this.raw.writeUnchecked(offset, buf, fua));
  }

  /** write() of the buffers back to back, with one pwritev (no joining copy). */
  async writev(offset: number, data: readonly Buffer[], options?: { fua?: boolean }): Promise<void> {
    this.checkOpen();
    const length = total(data);
    checkRange(this.name, this.capacity, offset, length);
    const fua = options?.fua === true;
    await this.submitWrite(offset, length, () => this.raw.writevUnchecked(offset, data, fua));
  }

  async flush(): Promise<void> {
    this.checkOpen();
    await this.counted(() => this.raw.flush());
  }

  async discard(offset: number, length: number): Promise<void> {
    await this.writeZeroes(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkOpen();
    checkRange(this.name, this.capacity, offset, length);
    await this.submitWrite(offset, length, () => this.raw.writeZeroesUnchecked(offset, length));
  }

  /** tracker_submit_bio() + diff_area_cow(), then the write itself. */
  private async submitWrite(offset: number, length: number, doWrite: () => Promise<void>): Promise<void> {
    if (length === 0) return;
    const wait = this.gate.enter();
    if (wait) await wait;
    try {
      this.checkOpen();
      const tracker = this.tracker;
      if (tracker) {
        // A corrupted CBT map: the module skips copy-on-write too.
        const tracked = recordWrite(tracker, offset, length);
        const da = tracker.diffArea;
        if (tracked && da && !da.corrupted) await da.cow(offset, length);
      }
      await doWrite();
    } finally {
      this.gate.leave();
    }
  }
}

/**
 * Records a write of [offset, offset+length) in the tracker's CBT map; false
 * when the map is corrupted (the write goes on all the same, as in the module).
 */
function recordWrite(tracker: Tracker, offset: number, length: number): boolean {
  try {
    tracker.cbt.set(offset / SECTOR_SIZE, length / SECTOR_SIZE);
    return true;
  } catch {
    return false;
  }
}
