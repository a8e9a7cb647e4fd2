/**
 * The difference storage of one snapshot (seed 001 diff_storage.c, with the v6
 * file-backed growth): one file, created by the engine with O_EXCL or given by the
 * caller as a descriptor, grown in portions of diff_storage_minimum sectors up to
 * the limit. A given descriptor may be, as the module's forms allow, a new empty
 * file, an existing regular file (its size is the initial capacity; growing only
 * ever extends it) or a block device (its size is the whole, fixed capacity). Regions are handed out
 * sequentially; when less than half a portion is left a low_free_space event is
 * queued and the next portion is requested; when a region no longer fits, the
 * storage overflows (no_space event, ENOSPC for every later request).
 *
 * Every portion is reserved on the file system as it is requested (fallocate, as
 * the module's vfs_fallocate()), so a file system that fills up shows as an
 * overflow with ENOSPC where the storage tries to grow, not as failed writes later.
 * Where the file system cannot reserve space (EOPNOTSUPP) the file is grown sparse
 * with ftruncate instead, and a full file system shows as writes failing with ENOSPC.
 */
import * as fs from 'node:fs';
import { BlksnapError } from '../abi/errno.js';
import { SECTOR_SIZE } from '../abi/types.js';
import { formatSize } from '../devices/size.js';
import { copyRange } from './copy-range.js';
import { fromNodeError } from './errors.js';
import type { EventQueue } from './event-queue.js';
import { reserveFileSpace } from './fallocate.js';
import { blockDeviceCapacity } from './file-block-device.js';
import { closeFd, ftruncate, readFull, writevFull } from './file-io.js';
import { readNoWait } from './nowait-io.js';
import type { ModuleParams } from './params.js';

/** How the storage file gets its space and its data (tests replace it to simulate a full file system). */
export interface StorageFileOps {
  /** Reserves [offset, offset+length) and extends the file over it; rejects with code EOPNOTSUPP where the file system cannot. */
  reserve(fd: number, offset: number, length: number): Promise<void>;
  writev(fd: number, bufs: Buffer[], pos: number): Promise<void>;
  /**
   * Copies `length` bytes of another file (`fdIn` at `posIn`) into the storage at
   * `pos` inside the kernel. Optional: without it copy-on-write reads chunks into
   * memory and writes them out.
   */
  copyFrom?(fdIn: number, posIn: number, fd: number, pos: number, length: number): Promise<void>;
}

/** Chunks copied into memory, then written: every byte is copied twice (tests of the buffered path use these). */
export const BUFFERED_STORAGE_FILE_OPS: StorageFileOps = { reserve: reserveFileSpace, writev: writevFull };

/**
 * The real file: chunks are copied from the original with copy_file_range where
 * the kernel allows it (libc is only loaded at the first copy; where it cannot be,
 * the copy fails with ENOSYS and the chunks take the buffered path).
 */
export const REAL_STORAGE_FILE_OPS: StorageFileOps = { ...BUFFERED_STORAGE_FILE_OPS, copyFrom: copyRange };

const sizeText = (sectors: number): string => formatSize(sectors * SECTOR_SIZE);

export class DiffStorage {
  /** Sectors the file has grown to: reserved on the file system (or, without fallocate, the sparse size). */
  capacity = 0;
  /** Sectors requested (more than capacity while a portion is being reserved, or could not be). */
  requested = 0;
  /** Sectors handed out to chunks. */
  filled = 0;
  /** False once the file system answered that it cannot reserve space: the file grows sparse. */
  private reserving = true;
  /** A block device: its capacity is fixed (it cannot grow). */
  private fixed = false;
  /** The growth in flight (portions are reserved one after the other). */
  private growth: Promise<boolean> = Promise.resolve(true);
  private lowSpaceFlag = 0;
  private overflowFlag = false;
  private closed = false;
  /** The limit in sectors (raised by raiseLimit while the snapshot is held). */
  private limitSectors: number;

  private constructor(
    readonly path: string,
    limit: number,
    private readonly fd: number,
    private readonly params: ModuleParams,
    private readonly events: EventQueue,
    private readonly ops: StorageFileOps,
    /** False when the file came from the caller (diffStorageFd): its creator removes it. */
    private readonly removeOnClose: boolean,
  ) {
    this.limitSectors = limit;
  }

  get limit(): number {
    return this.limitSectors;
  }

  /**
   * Raises the limit by `sectors` while the snapshot is held, as the module's
   * append_storage lets a held snapshot get more room (VAL-7's series). A low-space
   * condition left pending at the old limit requests its next portion at once.
   * EINVAL for a count that is not a positive integer; ENOSPC once the storage has
   * overflowed (the snapshot has failed already) or is closed.
   */
  raiseLimit(sectors: number): void {
    if (!Number.isSafeInteger(sectors) || sectors <= 0) {
      throw new BlksnapError('EINVAL', `the storage can only grow by a positive number of sectors, not ${String(sectors)}`);
    }
    if (this.overflowFlag || this.closed) {
      throw new BlksnapError('ENOSPC', `the difference storage ${this.path} has overflowed: the snapshot has failed and cannot be grown`);
    }
    if (!Number.isSafeInteger(this.limitSectors + sectors)) {
      throw new BlksnapError('EINVAL', `the difference storage limit cannot grow by ${sizeText(sectors)}`);
    }
    this.limitSectors += sectors;
    if (this.lowSpaceFlag > 0) {
      this.lowSpaceFlag = 0;
      this.checkHalffull(this.requested - this.filled);
    }
  }

  /**
   * Creates the storage file (O_CREAT | O_EXCL: EEXIST if anything exists at the
   * path), or takes the caller's descriptor `givenFd` (closed also when this
   * fails), and sets its initial capacity as the module's diff_storage_set() does:
   * a block device's size (fixed), or the regular file's current size, grown by a
   * first portion when at most half a portion is there (ENOSPC when the file system
   * cannot hold it, or when an existing file is already larger than the limit).
   */
  static async create(
    path: string,
    limitSectors: number,
    params: ModuleParams,
    events: EventQueue,
    givenFd?: number,
    ops: StorageFileOps = REAL_STORAGE_FILE_OPS,
  ): Promise<DiffStorage> {
    let fd: number;
    if (givenFd !== undefined) {
      fd = givenFd;
    } else {
      try {
        fd = await new Promise<number>((resolve, reject) => {
          fs.open(path, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600, (err, f) =>
            err ? reject(err) : resolve(f),
          );
        });
      } catch (err) {
        throw fromNodeError(err, `cannot create the difference storage ${path}`);
      }
    }
    const ds = new DiffStorage(path, limitSectors, fd, params, events, ops, givenFd === undefined);
    let failure: BlksnapError | null;
    try {
      failure = await ds.setInitialCapacity();
    } catch (err) {
      failure = fromNodeError(err, `cannot use the difference storage ${path}`);
    }
    if (failure) {
      await ds.close();
      throw failure;
    }
    return ds;
  }

  /** The capacity the descriptor has now, and the first portion where it is (nearly) empty. */
  private async setInitialCapacity(): Promise<BlksnapError | null> {
    const st = fs.fstatSync(this.fd);
    if (st.isBlockDevice()) {
      this.fixed = true;
      this.capacity = this.requested = Math.floor(blockDeviceCapacity(st.rdev, this.path) / SECTOR_SIZE);
      if (this.capacity === 0) return new BlksnapError('EINVAL', `the block device ${this.path} is empty (0 bytes)`);
      return null;
    }
    if (!st.isFile()) return new BlksnapError('EINVAL', `the difference storage ${this.path} is not a regular file or a block device`);
    this.capacity = this.requested = Math.floor(st.size / SECTOR_SIZE);
    if (!this.isHalffull(this.capacity) || this.limit === 0) return null;
    if (this.capacity === this.limit) return null;
    if (this.capacity > this.limit) {
      return new BlksnapError(
        'ENOSPC',
        `the difference storage ${this.path} already holds ${sizeText(this.capacity)}, more than the limit of ${sizeText(this.limit)}: give a limit of at least its size`,
      );
    }
    this.requested += Math.min(this.params.diffStorageMinimum, this.limit - this.capacity);
    return this.growTo(this.requested);
  }

  private isHalffull(sectorsLeft: number): boolean {
    return sectorsLeft <= Math.floor(this.params.diffStorageMinimum / 2);
  }

  /**
   * check_halffull(): when at most half a portion is left, a low_free_space event
   * and (under the limit) one more portion is requested and its reservation starts
   * at once, so the low-space flag is cleared immediately and the storage can be
   * filled exactly up to its limit. At the limit the flag stays set: one last event.
   */
  private checkHalffull(sectorsLeft: number): void {
    if (!this.isHalffull(sectorsLeft)) return;
    this.lowSpaceFlag++;
    if (this.lowSpaceFlag !== 1) return;
    this.events.push({ code: 'low_free_space', requestedSectors: this.params.diffStorageMinimum });
    if (this.fixed || this.requested >= this.limit) return; // a block device, or the limit has been reached
    this.requested += Math.min(this.params.diffStorageMinimum, this.limit - this.requested);
    this.lowSpaceFlag = 0;
    void this.growTo(this.requested);
  }

  /**
   * Grows the file to `target` sectors after any growth in flight (the module's
   * vfs_fallocate() in its reallocate work). Growing only ever extends the file,
   * so it never cuts off data written meanwhile. Resolves with the failure (an
   * ENOSPC BlksnapError when the file system is full), or null once the file
   * covers `target`.
   */
  private growTo(target: number): Promise<BlksnapError | null> {
    const step = this.growth.then(() => this.growNow(target));
    this.growth = step.then((failure) => failure === null);
    return step;
  }

  private async growNow(target: number): Promise<BlksnapError | null> {
    if (this.capacity >= target) return null;
    if (this.closed) return new BlksnapError('ENOSPC', `the difference storage ${this.path} is closed`);
    const from = this.capacity * SECTOR_SIZE;
    const length = (target - this.capacity) * SECTOR_SIZE;
    if (this.reserving) {
      try {
        await this.ops.reserve(this.fd, from, length);
        this.capacity = target;
        return null;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code !== 'EOPNOTSUPP' && code !== 'ENOSYS') {
          const e = fromNodeError(err, `cannot grow the difference storage ${this.path} to ${sizeText(target)}`);
          if (e.errno !== 'ENOSPC') return e;
          return new BlksnapError(
            'ENOSPC',
            `the file system holding the difference storage ${this.path} is full: ` +
              `it cannot hold ${sizeText(target)} (${sizeText(this.capacity)} reserved so far)`,
          );
        }
        this.reserving = false; // the file system cannot reserve: grow sparse from now on
      }
    }
    try {
      await ftruncate(this.fd, target * SECTOR_SIZE);
      this.capacity = target;
      return null;
    } catch (err) {
      return fromNodeError(err, `cannot grow the difference storage ${this.path} to ${sizeText(target)}`);
    }
  }

  /** The storage overflows for good: a no_space event and ENOSPC for this and every later request. */
  private overflow(count: number, message: string): never {
    this.overflowFlag = true;
    this.events.push({ code: 'no_space', requestedSectors: count });
    throw new BlksnapError('ENOSPC', message);
  }

  /**
   * alloc() where it need not wait: a region of `count` sectors when the space
   * reserved already holds it, else null, with nothing done (alloc() then waits
   * for the growth, or reports the overflow).
   */
  allocNow(count: number): number | null {
    if (!this.canAllocNow(count)) return null;
    const sector = this.filled;
    this.filled += count;
    this.checkHalffull(this.requested - this.filled);
    return sector;
  }

  /**
   * Gives back the region of `count` sectors at `sector` when it is the last
   * one given out (nothing was allocated after it): true then, and the next
   * allocation gets it again. A region handed out ahead of its use
   * (DiffArea.takeWindow) and not used so does not fill the storage.
   */
  giveBack(sector: number, count: number): boolean {
    if (this.closed || sector + count !== this.filled) return false;
    this.filled = sector;
    return true;
  }

  /** True when allocNow(count) would give a region. */
  canAllocNow(count: number): boolean {
    return !this.overflowFlag && !this.closed && this.filled + count <= this.capacity;
  }

  /**
   * Where an in-kernel copy made elsewhere (not through copyFrom(), on another
   * thread) puts a region's bytes: the file's descriptor and the byte position
   * of `sector`. Null when copyFrom() could not be tried either (canCopyFrom).
   */
  copyTarget(sector: number): { fd: number; position: number } | null {
    return this.canCopyFrom ? { fd: this.fd, position: sector * SECTOR_SIZE } : null;
  }

  /**
   * diff_storage_alloc(): a region of `count` sectors; its first sector, or ENOSPC
   * when the limit is reached or the file system cannot hold the region.
   */
  async alloc(count: number): Promise<number> {
    for (;;) {
      if (this.overflowFlag || this.closed) throw new BlksnapError('ENOSPC', `the difference storage ${this.path} is full`);
      if (this.filled + count > this.requested) {
        this.overflow(count, `the difference storage ${this.path} reached its limit of ${sizeText(this.limit)}`);
      }
      const sector = this.allocNow(count);
      if (sector !== null) return sector;
      // Requested but not reserved yet: wait for the growth (or try once more if it failed).
      const failure = await this.growTo(this.requested);
      if (failure && !this.overflowFlag && this.filled + count > this.capacity) this.overflow(count, failure.message);
    }
  }

  get overflowed(): boolean {
    return this.overflowFlag;
  }

  /**
   * Sectors of disk space the file really holds (its blocks, at most its size),
   * once the reservation in flight is over: the figure for storage_info.
   */
  async allocatedSectors(): Promise<number> {
    for (let g = this.growth; ; g = this.growth) {
      await g;
      if (g === this.growth) break; // no reservation was started meanwhile
    }
    if (this.closed) return 0;
    if (this.fixed) return this.capacity; // a block device: all of it
    const st = await new Promise<fs.Stats>((resolve, reject) => fs.fstat(this.fd, (err, s) => (err ? reject(err) : resolve(s))));
    return Math.min(this.capacity, st.blocks * (512 / SECTOR_SIZE));
  }

  /**
   * Writes at `sector`. A file system that is full (a sparse file, where space
   * could not be reserved) overflows the storage as a reservation failure would:
   * a no_space event, ENOSPC now and for every later request.
   */
  async writev(sector: number, bufs: Buffer[]): Promise<void> {
    try {
      await this.ops.writev(this.fd, bufs, sector * SECTOR_SIZE);
    } catch (err) {
      const e = fromNodeError(err, `cannot write to the difference storage ${this.path}`);
      if (e.errno !== 'ENOSPC') throw e;
      let sectors = 0;
      for (const b of bufs) sectors += Math.ceil(b.length / SECTOR_SIZE);
      if (!this.overflowFlag) {
        this.overflowFlag = true;
        this.events.push({ code: 'no_space', requestedSectors: sectors });
      }
      throw new BlksnapError('ENOSPC', `the file system holding the difference storage ${this.path} is full`);
    }
  }

  /** True when copyFrom() may be tried (the file operations can copy inside the kernel). */
  get canCopyFrom(): boolean {
    return this.ops.copyFrom !== undefined && !this.closed;
  }

  /**
   * Copies `length` bytes of the file `fdIn` from `posIn` to `sector`, inside the
   * kernel. Rejects (with the errno name as `code`) where the pair of files does
   * not allow it; the caller then reads and writes the data itself, which also
   * reports a full file system as writev() does.
   */
  async copyFrom(fdIn: number, posIn: number, sector: number, length: number): Promise<void> {
    const copy = this.ops.copyFrom;
    if (copy === undefined || this.closed) {
      throw Object.assign(new Error(`the difference storage ${this.path} cannot copy`), { code: 'EOPNOTSUPP' });
    }
    await copy(fdIn, posIn, this.fd, sector * SECTOR_SIZE, length);
  }

  async read(sector: number, buf: Buffer, off: number, len: number): Promise<void> {
    try {
      await readFull(this.fd, buf, off, len, sector * SECTOR_SIZE);
    } catch (err) {
      throw fromNodeError(err, `cannot read the difference storage ${this.path}`);
    }
  }

  /**
   * read(), synchronously, when every byte is in the page cache (preadv2 with
   * RWF_NOWAIT: never waits for the disk). False when it cannot, or once closed
   * (the descriptor may name another file then); `buf` is left unspecified.
   */
  readNow(sector: number, buf: Buffer, off: number, len: number): boolean {
    if (this.closed) return false;
    return readNoWait(this.fd, buf, off, len, sector * SECTOR_SIZE);
  }

  async write(sector: number, buf: Buffer, off: number, len: number): Promise<void> {
    await this.writev(sector, [buf.subarray(off, off + len)]);
  }

  /**
   * Closes the file, and removes it when the engine created it (only if the path
   * still names this very file); a file given by the caller is left to its creator.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.growth; // no reservation may run on a closed (or reused) descriptor
    let ours = false;
    if (this.removeOnClose) {
      try {
        const mine = fs.fstatSync(this.fd);
        const now = await fs.promises.lstat(this.path);
        ours = mine.dev === now.dev && mine.ino === now.ino;
      } catch {
        // already gone: nothing to remove
      }
    }
    try {
      await closeFd(this.fd);
    } finally {
      if (ours) await fs.promises.rm(this.path, { force: true });
    }
  }
}
