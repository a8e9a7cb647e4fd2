/**
 * The difference storage of one snapshot (seed 001 diff_storage.c, with the v6
 * file-backed growth): one file, created by the engine with O_EXCL, grown in
 * portions of diff_storage_minimum sectors up to the limit. Regions are handed out
 * sequentially; when less than half a portion is left a low_free_space event is
 * queued and the next portion is requested; when a region no longer fits, the
 * storage overflows (no_space event, ENOSPC for every later request).
 */
import * as fs from 'node:fs';
import { BlksnapError } from '../abi/errno.js';
import { SECTOR_SIZE } from '../abi/types.js';
import { fromNodeError } from './errors.js';
import type { EventQueue } from './event-queue.js';
import { closeFd, ftruncate, readFull, writevFull } from './file-io.js';
import type { ModuleParams } from './params.js';

export class DiffStorage {
  /** Sectors the file has been grown to. */
  capacity = 0;
  /** Sectors requested (equal to capacity unless growing the file failed). */
  requested = 0;
  /** Sectors handed out to chunks. */
  filled = 0;
  private lowSpaceFlag = 0;
  private overflowFlag = false;
  private closed = false;

  private constructor(
    readonly path: string,
    readonly limit: number,
    private readonly fd: number,
    private readonly params: ModuleParams,
    private readonly events: EventQueue,
    /** False when the file came from the caller (diffStorageFd): its creator removes it. */
    private readonly removeOnClose: boolean,
  ) {}

  /**
   * Creates the storage file (O_CREAT | O_EXCL: EEXIST if anything exists at the
   * path) and allocates the first portion (diff_storage_set_diff_storage()).
   */
  static async create(path: string, limitSectors: number, params: ModuleParams, events: EventQueue, givenFd?: number): Promise<DiffStorage> {
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
    const ds = new DiffStorage(path, limitSectors, fd, params, events, givenFd === undefined);
    try {
      if (ds.isHalffull(0) && ds.limit > 0) {
        ds.requested = Math.min(params.diffStorageMinimum, ds.limit);
        await ftruncate(fd, ds.requested * SECTOR_SIZE);
        ds.capacity = ds.requested;
      }
    } catch (err) {
      await ds.close();
      throw fromNodeError(err, `cannot allocate the difference storage ${path}`);
    }
    return ds;
  }

  private isHalffull(sectorsLeft: number): boolean {
    return sectorsLeft <= Math.floor(this.params.diffStorageMinimum / 2);
  }

  /**
   * check_halffull(): when at most half a portion is left, a low_free_space event
   * and (under the limit) one more portion is requested and the file grows at
   * once, so the low-space flag is cleared immediately and the storage can be
   * filled exactly up to its limit. At the limit the flag stays set: one last event.
   */
  private checkHalffull(sectorsLeft: number): void {
    if (!this.isHalffull(sectorsLeft)) return;
    this.lowSpaceFlag++;
    if (this.lowSpaceFlag !== 1) return;
    this.events.push({ code: 'low_free_space', requestedSectors: this.params.diffStorageMinimum });
    if (this.requested >= this.limit) return; // the limit has been reached
    this.requested += Math.min(this.params.diffStorageMinimum, this.limit - this.requested);
    this.lowSpaceFlag = 0;
    this.grow();
  }

  /**
   * Grows the file to `requested` (the module's vfs_fallocate() in its reallocate
   * work). Done synchronously, before any region of the new portion is written,
   * so a resize can never cut off data written past an older end of file; it is a
   * metadata-only operation (the file is sparse).
   */
  private grow(): void {
    try {
      fs.ftruncateSync(this.fd, this.requested * SECTOR_SIZE);
      this.capacity = this.requested;
    } catch {
      // The file could not grow: writes past its end still extend it if the file
      // system has room; otherwise they fail and the chunk store fails (EIO).
    }
  }

  /** diff_storage_alloc(): a region of `count` sectors; its first sector, or ENOSPC. */
  alloc(count: number): number {
    if (this.overflowFlag || this.closed) throw new BlksnapError('ENOSPC', 'the difference storage is full');
    if (this.filled + count > this.requested) {
      this.overflowFlag = true;
      this.events.push({ code: 'no_space', requestedSectors: count });
      throw new BlksnapError('ENOSPC', `the difference storage ${this.path} reached its limit of ${this.limit} sectors`);
    }
    const sector = this.filled;
    this.filled += count;
    this.checkHalffull(this.requested - this.filled);
    return sector;
  }

  get overflowed(): boolean {
    return this.overflowFlag;
  }

  async writev(sector: number, bufs: Buffer[]): Promise<void> {
    await writevFull(this.fd, bufs, sector * SECTOR_SIZE);
  }

  async read(sector: number, buf: Buffer, off: number, len: number): Promise<void> {
    await readFull(this.fd, buf, off, len, sector * SECTOR_SIZE);
  }

  async write(sector: number, buf: Buffer, off: number, len: number): Promise<void> {
    await writevFull(this.fd, [buf.subarray(off, off + len)], sector * SECTOR_SIZE);
  }

  /**
   * Closes the file, and removes it when the engine created it (only if the path
   * still names this very file); a file given by the caller is left to its creator.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
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
