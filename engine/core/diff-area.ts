/**
 * The difference area of one device in a taken snapshot (seed 001, diff_area.c and
 * chunk.c): copy-on-write of original writes by chunk, the store queue that moves
 * chunk buffers to the difference storage, and the I/O of the snapshot image.
 *
 * Chunk metadata is compact: one state byte per chunk in a Uint8Array; buffers
 * (IN_MEMORY chunks) and storage regions (STORED chunks) in Maps that only hold
 * the chunks that were touched; per-chunk locks exist only while held.
 */
import { BlksnapError, errnoName, isBlksnapError } from '../abi/errno.js';
import { SECTOR_SIZE } from '../abi/types.js';
import { KeyedMutex } from './async-lock.js';
import { CHUNK_FAILED, CHUNK_IN_MEMORY, CHUNK_NEW, CHUNK_STORED, calculateChunkSize } from './chunk.js';
import { DiffBufferPool } from './diff-buffer.js';
import type { DiffStorage } from './diff-storage.js';
import type { EventQueue } from './event-queue.js';
import type { BlockExtent, FileCopy, StreamCow } from './block-device.js';
import { pushExtent } from './file-extents.js';
import type { FileBlockDevice } from './file-block-device.js';
import type { ModuleParams } from './params.js';

/** Most chunks read (copy-on-write) or written (store) in one vectored call. */
export const MAX_BATCH = 64;

/** The negative errno a failure is recorded with (-ENOSPC when the storage is full; -EIO when unknown). */
function errCodeOf(err: unknown): number {
  return -(isBlksnapError(err) ? err.errnoNumber : 5);
}

/**
 * The device bytes a write stream's window covers (DiffArea.takeWindow): the
 * chunks its writes copy on their own, with their storage regions given at
 * once. Larger windows hand back fewer writes to the event loop; the regions
 * of chunks a stream did not reach stay theirs (used when they are copied).
 */
export const STREAM_WINDOW_BYTES = 32 * 1024 * 1024;

/** Copy-on-write handed to the caller (DiffArea.takeCopies). */
export interface ChunkCopies {
  copies: FileCopy[];
  /** Once: `copied` when every copy was made; `failed` when one failed. */
  end(copied: boolean, failed: boolean): void;
}

/** A write stream's window of chunks (DiffArea.takeWindow). */
export interface ChunkWindow {
  cow: StreamCow;
  /** Once, when the stream makes no more copies: copied chunks are STORED, and every chunk is given back. */
  end(): void;
}

export interface DiffAreaOwner {
  name: string;
  devMajor: number;
  devMinor: number;
}

export class DiffArea {
  readonly chunkShift: number;
  readonly chunkBytes: number;
  readonly chunkSectors: number;
  readonly chunkCount: number;
  readonly capacity: number;
  /** One state byte per chunk (CHUNK_*), in shared memory: write streams read it on their threads (takeWindow). */
  readonly states: Uint8Array;
  private readonly buffers = new Map<number, Buffer>();
  private readonly regions = new Map<number, number>();
  private readonly locks = new KeyedMutex();
  /** Chunks locked by takeCopies(), and how to ask their holder to give way. */
  private readonly yielders = new Map<number, () => void>();
  private storeQueue: number[] = [];
  private worker: Promise<void> | null = null;
  private progressWaiters: (() => void)[] = [];
  private readonly pool: DiffBufferPool;
  private readonly queueBound: number;
  /** False once an in-kernel copy failed here: copy-on-write then reads chunks into memory. */
  private copies = true;
  corrupted = false;
  errorCode = 0;
  private released = false;

  constructor(
    private readonly orig: FileBlockDevice,
    private readonly storage: DiffStorage,
    private readonly params: ModuleParams,
    private readonly events: EventQueue,
    private readonly owner: DiffAreaOwner,
  ) {
    this.capacity = orig.capacity;
    const { shift, count } = calculateChunkSize(orig.capacity / SECTOR_SIZE, orig.physicalBlockSize, params);
    this.chunkShift = shift;
    this.chunkBytes = 2 ** shift;
    this.chunkSectors = this.chunkBytes / SECTOR_SIZE;
    this.chunkCount = Math.ceil(orig.capacity / this.chunkBytes);
    if (count !== this.chunkCount) throw new Error('chunk count mismatch');
    this.states = new Uint8Array(new SharedArrayBuffer(this.chunkCount));
    this.pool = new DiffBufferPool(this.chunkBytes, params.freeDiffBufferPoolSize);
    this.queueBound = Math.max(1, params.chunkMaximumInQueue + params.freeDiffBufferPoolSize);
  }

  /** Bytes of chunk `nr` on the device (the last chunk may be shorter). */
  chunkLength(nr: number): number {
    const start = nr * this.chunkBytes;
    return Math.min(this.chunkBytes, this.capacity - start);
  }

  /** diff_area_set_corrupted(): once; records the error and queues a `corrupted` event. */
  setCorrupted(errCode: number): void {
    if (this.corrupted) return;
    this.corrupted = true;
    this.errorCode = errCode;
    this.events.push({
      code: 'corrupted',
      device: this.owner.name,
      devMajor: this.owner.devMajor,
      devMinor: this.owner.devMinor,
      errCode,
    });
  }

  /** Locks chunk `nr`, first asking a caller that holds it for copies it has not begun (takeCopies) to give way. */
  private async lockChunk(nr: number): Promise<void> {
    if (this.locks.isLocked(nr)) this.yielders.get(nr)?.();
    const p = this.locks.lock(nr);
    if (p) await p;
  }

  /** chunk_store_failed(): the chunk fails, its buffer and region are dropped. */
  private storeFailed(nr: number, errCode: number): void {
    this.states[nr] = CHUNK_FAILED;
    const buf = this.buffers.get(nr);
    if (buf) {
      this.buffers.delete(nr);
      this.pool.release(buf);
    }
    this.regions.delete(nr);
    if (errCode) this.setCorrupted(errCode);
  }

  /** chunk_schedule_storing(): IN_MEMORY and in the store queue; wakes the worker past the threshold. */
  private scheduleStoring(nr: number): void {
    this.states[nr] = CHUNK_IN_MEMORY;
    this.storeQueue.push(nr);
    if (this.storeQueue.length > this.params.chunkMaximumInQueue) this.kickWorker();
  }

  private kickWorker(): void {
    if (this.worker) return;
    this.worker = this.storeWorker().finally(() => {
      this.worker = null;
      this.notifyProgress();
      // Chunks queued while the last batch was written.
      if (this.storeQueue.length > this.params.chunkMaximumInQueue) this.kickWorker();
    });
  }

  private notifyProgress(): void {
    const w = this.progressWaiters;
    this.progressWaiters = [];
    for (const f of w) f();
  }

  /** Backpressure: a writer waits (holding no chunk lock) while the store queue is full. */
  private async waitQueueRoom(): Promise<void> {
    while (this.storeQueue.length >= this.queueBound && !this.corrupted && !this.released) {
      this.kickWorker();
      await new Promise<void>((resolve) => this.progressWaiters.push(resolve));
    }
  }

  /** diff_area_store_queue_work(): stores queued chunks, batching contiguous regions. */
  private async storeWorker(): Promise<void> {
    while (this.storeQueue.length > 0) {
      const batch: number[] = [];
      const rest: number[] = [];
      for (const nr of this.storeQueue) {
        if (batch.length < MAX_BATCH && this.locks.tryLock(nr)) batch.push(nr);
        else rest.push(nr);
      }
      this.storeQueue = rest;
      if (batch.length === 0) {
        // Every queued chunk is busy: wait for the first one, holding nothing.
        const nr = this.storeQueue.shift()!;
        await this.lockChunk(nr);
        batch.push(nr);
      }
      await this.storeBatch(batch);
      this.notifyProgress();
    }
  }

  /** Stores locked chunks and unlocks them. */
  private async storeBatch(batch: number[]): Promise<void> {
    const toStore: { nr: number; sector: number }[] = [];
    for (const nr of batch) {
      if (this.states[nr] !== CHUNK_IN_MEMORY) {
        this.locks.unlock(nr);
        continue;
      }
      if (this.corrupted || this.released) {
        this.storeFailed(nr, 0);
        this.locks.unlock(nr);
        continue;
      }
      let sector = this.regions.get(nr);
      if (sector === undefined) {
        try {
          sector = await this.storage.alloc(this.chunkSectors);
        } catch (err) {
          this.storeFailed(nr, errCodeOf(err));
          this.locks.unlock(nr);
          continue;
        }
        this.regions.set(nr, sector);
      }
      toStore.push({ nr, sector });
    }
    toStore.sort((a, b) => a.sector - b.sector);
    let i = 0;
    while (i < toStore.length) {
      let j = i + 1;
      while (j < toStore.length && toStore[j]!.sector === toStore[j - 1]!.sector + this.chunkSectors) j++;
      const group = toStore.slice(i, j);
      const bufs = group.map((c) => this.buffers.get(c.nr)!);
      let errCode = 0;
      try {
        await this.storage.writev(group[0]!.sector, bufs);
      } catch (err) {
        errCode = errCodeOf(err);
      }
      for (const c of group) {
        if (errCode === 0) {
          // chunk_notify_store()
          this.states[c.nr] = CHUNK_STORED;
          const buf = this.buffers.get(c.nr);
          if (buf) {
            this.buffers.delete(c.nr);
            this.pool.release(buf);
          }
        } else {
          this.storeFailed(c.nr, errCode);
        }
        this.locks.unlock(c.nr);
      }
      i = j;
    }
  }

  /**
   * True when a write of [offset, offset+length) must wait for cow(): some chunk
   * it touches still holds the content at take only in the original (NEW, or
   * being loaded: a chunk stays NEW until its old data is held).
   */
  needsCow(offset: number, length: number): boolean {
    if (this.corrupted || this.released || length <= 0) return false;
    const first = Math.floor(offset / this.chunkBytes);
    const last = Math.floor((offset + length - 1) / this.chunkBytes);
    for (let nr = first; nr <= last; nr++) if (this.states[nr] === CHUNK_NEW) return true;
    return false;
  }

  /**
   * diff_area_cow(): before an original write of [offset, offset+length) lands,
   * the old data of every NEW chunk it touches is read into memory (and queued for
   * storing). Resolves when all of it is held; failures mark the area corrupted and
   * let the write proceed (the original never loses a write).
   */
  async cow(offset: number, length: number): Promise<void> {
    if (!this.needsCow(offset, length)) return;
    const first = Math.floor(offset / this.chunkBytes);
    const last = Math.floor((offset + length - 1) / this.chunkBytes);
    let nr = first;
    while (nr <= last) {
      if (this.states[nr] !== CHUNK_NEW) {
        nr++;
        continue;
      }
      // Backpressure before every run, holding no chunk lock: a large write
      // (a discard of the whole device) must not load all its chunks at once.
      await this.waitQueueRoom();
      if (this.corrupted) return;
      if (this.states[nr] !== CHUNK_NEW) continue;
      // Lock a run of NEW chunks in ascending order (deadlock-free: every holder of
      // several chunk locks takes them in ascending order; the store worker only
      // try-locks while it holds others).
      const run: number[] = [];
      let j = nr;
      while (j <= last && run.length < MAX_BATCH) {
        if (this.states[j] !== CHUNK_NEW) break;
        await this.lockChunk(j);
        if (this.states[j] !== CHUNK_NEW) {
          this.locks.unlock(j);
          break;
        }
        run.push(j);
        j++;
      }
      if (run.length > 0 && !(await this.copyRun(run))) await this.loadRun(run);
      nr = run.length > 0 ? j : nr + 1;
      if (this.corrupted) return;
    }
  }

  /**
   * Copy-on-write made by the caller, on another thread, before its own write
   * of [offset, offset+length) (EngineDevice.fileWriteTarget): every NEW chunk
   * of the range is locked now and given its region of the storage now, and
   * the in-kernel copies that move their old data there are handed out, one
   * per run of chunks whose regions follow each other. The caller makes them
   * all, and writes only if they all succeeded; then end(): the chunks are
   * STORED when copied, else stay NEW (a failed copy stops the in-kernel copies
   * of this area, as in copyRun(); the regions stay theirs, for loadRun()), and
   * are unlocked. Readers of the image wait for the locks meanwhile, as they do
   * for copyRun(); since the caller may hold them while its client sends the
   * payload, whoever waits for one asks it to give way first (`onContention`:
   * not copying yet, it should end without copying). Null, with nothing done,
   * where that cannot be done at once:
   * no in-kernel copies, a chunk of the range locked, a region that would wait
   * for the storage to grow, or no NEW chunk.
   */
  takeCopies(offset: number, length: number, onContention: () => void): ChunkCopies | null {
    const fdIn = this.orig.copySourceFd;
    if (!this.handsOutCopies || fdIn === null || length <= 0) return null;
    const first = Math.floor(offset / this.chunkBytes);
    const last = Math.floor((offset + length - 1) / this.chunkBytes);
    const run: number[] = [];
    let fresh = 0;
    for (let nr = first; nr <= last; nr++) {
      if (this.locks.isLocked(nr)) return null;
      if (this.states[nr] !== CHUNK_NEW) continue;
      run.push(nr);
      if (!this.regions.has(nr)) fresh++;
    }
    if (run.length === 0 || !this.storage.canAllocNow(fresh * this.chunkSectors)) return null;
    const copies: FileCopy[] = [];
    for (const nr of run) {
      const { fd, position } = this.holdForCopy(nr, onContention)!;
      const posIn = nr * this.chunkBytes;
      const prev = copies[copies.length - 1];
      if (prev !== undefined && prev.posIn + prev.length === posIn && prev.posOut + prev.length === position) prev.length += this.chunkLength(nr);
      else copies.push({ fdIn, posIn, fdOut: fd, posOut: position, length: this.chunkLength(nr) });
    }
    let ended = false;
    return {
      copies,
      end: (copied, failed) => {
        if (ended) return;
        ended = true;
        if (failed) this.copies = false;
        for (const nr of run) this.releaseHeld(nr, copied);
      },
    };
  }

  /**
   * Locks NEW chunk `nr` (unlocked) for a copy made by a caller on another
   * thread (takeCopies, takeWindow), with its region of the storage: its own,
   * if an earlier hand-out gave it one, else one allocated now (`fresh`).
   * `onContention` is how whoever waits for it asks the caller to give way
   * (lockChunk). Null, with nothing done, when the storage has no region
   * without growing.
   */
  private holdForCopy(nr: number, onContention: () => void): { fd: number; position: number; fresh: boolean } | null {
    let sector = this.regions.get(nr);
    const fresh = sector === undefined;
    if (sector === undefined) {
      const got = this.storage.allocNow(this.chunkSectors);
      if (got === null) return null;
      sector = got;
      this.regions.set(nr, sector);
    }
    this.locks.tryLock(nr);
    this.yielders.set(nr, onContention);
    return { ...this.storage.copyTarget(sector)!, fresh };
  }

  /** Ends holdForCopy(): the chunk is STORED when the caller copied it (else stays NEW), and unlocked. */
  private releaseHeld(nr: number, copied: boolean): void {
    if (copied) this.states[nr] = CHUNK_STORED;
    this.yielders.delete(nr);
    this.locks.unlock(nr);
  }

  /** True when takeCopies() and takeWindow() may hand out copies now (in-kernel copies from the original into the storage work). */
  get handsOutCopies(): boolean {
    return this.copies && this.orig.copySourceFd !== null && this.storage.canCopyFrom && !this.corrupted && !this.released;
  }

  /**
   * Copy-on-write for a stream of writes made on another thread
   * (EngineDevice.fileWriteStream), from the chunk of `offset` (rounded up)
   * on, for STREAM_WINDOW_BYTES: every NEW chunk there is held for the
   * stream's copy (holdForCopy), until the first that is locked or for which
   * the storage has no region at once. The stream copies a chunk before its
   * first write to it and says so in `copied` (StreamCow); end() then makes
   * those chunks STORED, leaves the others NEW (their regions stay theirs,
   * but those last in the storage are given back) and unlocks them all.
   * Whoever waits for one of them asks the stream to give way
   * (`onContention`; it ends before its next write, and then calls end()).
   * Null when the area cannot hand out copies (handsOutCopies).
   */
  takeWindow(offset: number, onContention: () => void): ChunkWindow | null {
    const fdIn = this.orig.copySourceFd;
    if (!this.handsOutCopies || fdIn === null) return null;
    const first = Math.min(this.chunkCount, Math.ceil(offset / this.chunkBytes));
    const max = Math.min(this.chunkCount - first, Math.max(1, Math.floor(STREAM_WINDOW_BYTES / this.chunkBytes)));
    const targets = new Float64Array(new SharedArrayBuffer(8 * max));
    const copied = new Uint8Array(new SharedArrayBuffer(max));
    let fdOut = -1;
    let count = 0;
    /** Window chunks whose regions were allocated here (given back at end() if not used). */
    const fresh: number[] = [];
    for (; count < max; count++) {
      const nr = first + count;
      if (this.states[nr] !== CHUNK_NEW) {
        targets[count] = -1;
        continue;
      }
      if (this.locks.isLocked(nr)) break;
      const target = this.holdForCopy(nr, onContention);
      if (target === null) break;
      if (target.fresh) fresh.push(nr);
      fdOut = target.fd;
      targets[count] = target.position;
    }
    let ended = false;
    return {
      cow: { states: this.states, chunkShift: this.chunkShift, fdIn, fdOut, first, count, targets, copied },
      end: () => {
        if (ended) return;
        ended = true;
        if (copied.includes(2)) this.copies = false;
        // Regions not used, last first: those at the storage's end are given back (before any chunk is unlocked).
        for (let i = fresh.length - 1; i >= 0; i--) {
          const nr = fresh[i]!;
          if (Atomics.load(copied, nr - first) === 1 || !this.storage.giveBack(this.regions.get(nr)!, this.chunkSectors)) break;
          this.regions.delete(nr);
        }
        for (let k = 0; k < count; k++) if (targets[k]! >= 0) this.releaseHeld(first + k, Atomics.load(copied, k) === 1);
      },
    };
  }

  /**
   * Copy-on-write without memory buffers: contiguous locked NEW chunks get
   * storage regions (allocated back to back, so usually one region for the
   * run) and their old data is copied from the original straight into them by
   * the kernel (copy_file_range: one copy of each byte, no user-space buffer);
   * then they are STORED and unlocked. Returns false, with the chunks still
   * locked and NEW, when the copy cannot be done this way (a block device, a
   * storage without in-kernel copies, a region that could not be allocated, a
   * failed copy): loadRun() then takes them, and reuses the regions already
   * allocated, so a full storage fails the chunks as the store worker always did.
   */
  private async copyRun(run: number[]): Promise<boolean> {
    const fdIn = this.orig.copySourceFd;
    if (!this.copies || fdIn === null || !this.storage.canCopyFrom || this.corrupted) return false;
    const sectors: number[] = [];
    try {
      for (const nr of run) {
        const sector = await this.storage.alloc(this.chunkSectors);
        sectors.push(sector);
        this.regions.set(nr, sector);
      }
    } catch {
      return false;
    }
    // One copy per group of chunks whose regions follow each other, all in flight at once.
    const copies: Promise<void>[] = [];
    let i = 0;
    while (i < run.length) {
      let j = i + 1;
      while (j < run.length && sectors[j] === sectors[j - 1]! + this.chunkSectors) j++;
      const from = run[i]! * this.chunkBytes;
      const to = run[j - 1]! * this.chunkBytes + this.chunkLength(run[j - 1]!);
      copies.push(this.storage.copyFrom(fdIn, from, sectors[i]!, to - from));
      i = j;
    }
    const settled = await Promise.allSettled(copies);
    if (settled.some((r) => r.status === 'rejected')) {
      this.copies = false;
      return false;
    }
    for (const nr of run) {
      this.states[nr] = CHUNK_STORED;
      this.locks.unlock(nr);
    }
    return true;
  }

  /** Loads contiguous locked NEW chunks from the original, queues them, unlocks them. */
  private async loadRun(run: number[]): Promise<void> {
    if (this.corrupted) {
      for (const nr of run) this.locks.unlock(nr);
      return;
    }
    const bufs: Buffer[] = [];
    try {
      for (const _nr of run) bufs.push(this.pool.take());
    } catch {
      // No memory for the buffers (diff_buffer_take() -> -ENOMEM): the chunks
      // fail and the area is corrupted, but no lock stays held and the
      // original write goes on, as in diff_area_cow().
      for (const b of bufs) this.pool.release(b);
      for (const nr of run) {
        this.storeFailed(nr, -12);
        this.locks.unlock(nr);
      }
      return;
    }
    const lastNr = run[run.length - 1]!;
    const lastLen = this.chunkLength(lastNr);
    const views = bufs.map((b, k) => (k === bufs.length - 1 ? b.subarray(0, lastLen) : b));
    let ok = true;
    try {
      await this.orig.readvInto(views, run[0]! * this.chunkBytes);
    } catch {
      ok = false;
    }
    if (lastLen < this.chunkBytes) bufs[bufs.length - 1]!.fill(0, lastLen);
    for (let k = 0; k < run.length; k++) {
      const nr = run[k]!;
      if (ok) {
        this.buffers.set(nr, bufs[k]!);
        this.scheduleStoring(nr);
      } else {
        this.pool.release(bufs[k]!);
        this.storeFailed(nr, -5);
      }
      this.locks.unlock(nr);
    }
  }

  private imageError(): BlksnapError {
    if (this.released) return new BlksnapError('ENODEV', `the snapshot image of ${this.owner.name} was released`);
    const name = errnoName(this.errorCode);
    const why = name === 'ENOSPC' ? ': the difference storage is full' : name ? `: ${name}` : '';
    return new BlksnapError('EIO', `the snapshot image of ${this.owner.name} is corrupted (error ${this.errorCode}${why})`);
  }

  /** Image read (diff_area_submit_chunk() for reads): the device content at take, plus image writes. */
  async imageRead(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    await this.imageReadInto(offset, length, out, 0);
    return out;
  }

  /**
   * Reads image bytes [offset, offset+length) into out[outOff, outOff+length).
   * Every chunk of the range is locked (in ascending order, as cow() does), then
   * the range is served with as few calls as possible, all in flight at once: a run
   * of NEW chunks is one read of the original, a run of STORED chunks whose regions
   * follow each other is one read of the difference storage, IN_MEMORY chunks are
   * copied from their buffers.
   */
  async imageReadInto(offset: number, length: number, out: Buffer, outOff: number): Promise<void> {
    if (this.corrupted || this.released) throw this.imageError();
    if (length === 0) return;
    const end = offset + length;
    const cb = this.chunkBytes;
    const first = Math.floor(offset / cb);
    const last = Math.floor((end - 1) / cb);
    for (let nr = first; nr <= last; nr++) await this.lockChunk(nr);
    try {
      for (let nr = first; nr <= last; nr++) if (this.states[nr] === CHUNK_FAILED) throw this.imageError();
      if (this.corrupted || this.released) throw this.imageError();
      const io: Promise<void>[] = [];
      this.eachImagePiece(offset, end, (from, to, where, at) => {
        const o = outOff + from - offset;
        if (where === 'original') io.push(this.orig.readInto(out, o, to - from, from));
        else if (where === 'storage') io.push(this.storage.read(at, out, o, to - from));
        else this.buffers.get(at)!.copy(out, o, from - at * cb, to - at * cb);
        return true;
      });
      if (io.length === 1) await io[0];
      else if (io.length > 1) {
        // Every read must be over before the chunks are unlocked, even when one fails.
        const settled = await Promise.allSettled(io);
        for (const r of settled) if (r.status === 'rejected') throw r.reason;
      }
      // Once the area is corrupted, original writes skip copy-on-write: a read of
      // the original that overlapped one may hold new data, so the read fails.
      if (this.corrupted || this.released) throw this.imageError();
    } finally {
      for (let nr = first; nr <= last; nr++) this.locks.unlock(nr);
    }
  }

  /**
   * imageReadInto() done synchronously, for the NBD server's fast path, when
   * nothing has to wait: no chunk of the range is locked (no copy-on-write, store
   * or image write of it is running: every change of a chunk's state or bytes
   * happens under its lock, and nothing else runs until this returns) and every
   * byte is in memory or in the page cache (RWF_NOWAIT reads of the original and
   * of the difference storage). False when it cannot, with `out` unspecified: the
   * caller then uses imageReadInto(), which also reports the errors.
   */
  imageReadIntoNow(offset: number, length: number, out: Buffer, outOff: number): boolean {
    if (this.corrupted || this.released) return false;
    if (length === 0) return true;
    const end = offset + length;
    const cb = this.chunkBytes;
    const first = Math.floor(offset / cb);
    const last = Math.floor((end - 1) / cb);
    for (let nr = first; nr <= last; nr++) {
      if (this.locks.isLocked(nr) || this.states[nr] === CHUNK_FAILED) return false;
    }
    return this.eachImagePiece(offset, end, (from, to, where, at) => {
      const o = outOff + from - offset;
      if (where === 'original') {
        try {
          return this.orig.readToNow(from, to - from, out, o);
        } catch {
          return false; // closed: the asynchronous path reports it
        }
      }
      if (where === 'storage') return this.storage.readNow(at, out, o, to - from);
      this.buffers.get(at)!.copy(out, o, from - at * cb, to - at * cb);
      return true;
    });
  }

  /**
   * The pieces an image read of [offset, end) is served from, in as few as
   * possible: a run of NEW chunks is one piece of the original, a run of STORED
   * chunks whose regions follow each other one piece of the storage (`at`: the
   * sector of `from`), an IN_MEMORY chunk its buffer (`at`: the chunk number).
   * Stops, returning false, at the first piece `visit` answers false for.
   */
  private eachImagePiece(
    offset: number,
    end: number,
    visit: (from: number, to: number, where: 'original' | 'storage' | 'memory', at: number) => boolean,
  ): boolean {
    const cb = this.chunkBytes;
    const last = Math.floor((end - 1) / cb);
    let nr = Math.floor(offset / cb);
    while (nr <= last) {
      const state = this.states[nr];
      const chunkStart = nr * cb;
      const from = Math.max(offset, chunkStart);
      let j = nr + 1;
      let ok: boolean;
      if (state === CHUNK_NEW) {
        while (j <= last && this.states[j] === CHUNK_NEW) j++;
        ok = visit(from, Math.min(end, j * cb), 'original', 0);
      } else if (state === CHUNK_STORED) {
        const sector = this.regions.get(nr)!;
        while (j <= last && this.states[j] === CHUNK_STORED && this.regions.get(j) === sector + (j - nr) * this.chunkSectors) j++;
        ok = visit(from, Math.min(end, j * cb), 'storage', sector + (from - chunkStart) / SECTOR_SIZE);
      } else {
        ok = visit(from, Math.min(end, chunkStart + cb), 'memory', nr); // IN_MEMORY
      }
      if (!ok) return false;
      nr = j;
    }
    return true;
  }

  /**
   * Allocation of image bytes [offset, offset+length): a chunk copied or written
   * into the difference area (in memory or stored) is data; the rest of the image
   * is the original's content, so its holes are the original file's holes.
   */
  async imageExtents(offset: number, length: number, maxRuns?: number): Promise<BlockExtent[]> {
    return this.imageExtentsNow(offset, length, maxRuns);
  }

  /**
   * imageExtents(), synchronously: the chunk states and the original's lseek
   * (FileBlockDevice.extentsNow) never wait. Stops once it has `maxRuns` runs
   * (the last one may then end early: a prefix of the answer).
   */
  imageExtentsNow(offset: number, length: number, maxRuns = Infinity): BlockExtent[] {
    if (this.corrupted || this.released) throw this.imageError();
    const out: BlockExtent[] = [];
    const end = offset + length;
    const cb = this.chunkBytes;
    let pos = offset;
    while (pos < end && out.length < maxRuns) {
      let nr = Math.floor(pos / cb);
      const own = this.states[nr] !== CHUNK_NEW;
      while (nr + 1 < this.chunkCount && (nr + 1) * cb < end && (this.states[nr + 1] !== CHUNK_NEW) === own) nr++;
      const runEnd = Math.min(end, (nr + 1) * cb);
      if (own) pushExtent(out, pos, runEnd - pos, false);
      else for (const e of this.orig.extentsNow(pos, runEnd - pos, maxRuns)) pushExtent(out, e.offset, e.length, e.hole);
      pos = runEnd;
    }
    if (out.length > maxRuns) out.length = maxRuns;
    return out;
  }

  /** Image write (diff_area_submit_chunk() for writes): the data goes to the chunk, never to the original. */
  async imageWrite(offset: number, data: Buffer): Promise<void> {
    if (this.corrupted || this.released) throw this.imageError();
    const end = offset + data.length;
    if (data.length === 0) return;
    const first = Math.floor(offset / this.chunkBytes);
    const last = Math.floor((end - 1) / this.chunkBytes);
    if (this.states.subarray(first, last + 1).includes(CHUNK_NEW)) await this.waitQueueRoom();
    for (let nr = first; nr <= last; nr++) {
      const chunkStart = nr * this.chunkBytes;
      const from = Math.max(offset, chunkStart);
      const to = Math.min(end, chunkStart + this.chunkBytes);
      await this.lockChunk(nr);
      try {
        const state = this.states[nr];
        if (state === CHUNK_FAILED || this.corrupted || this.released) throw this.imageError();
        if (state === CHUNK_IN_MEMORY) {
          data.copy(this.buffers.get(nr)!, from - chunkStart, from - offset, to - offset);
        } else if (state === CHUNK_STORED) {
          const sector = this.regions.get(nr)!;
          try {
            await this.storage.write(sector + (from - chunkStart) / SECTOR_SIZE, data, from - offset, to - from);
          } catch (err) {
            // part of the chunk may hold the new data: the chunk can no longer be trusted
            this.storeFailed(nr, errCodeOf(err));
            throw err;
          }
        } else {
          // NEW: load the chunk from the original, then put the data in it.
          const buf = this.pool.take();
          const len = this.chunkLength(nr);
          try {
            await this.orig.readInto(buf, 0, len, chunkStart);
          } catch (err) {
            this.pool.release(buf);
            this.storeFailed(nr, -5);
            throw err;
          }
          if (len < this.chunkBytes) buf.fill(0, len);
          data.copy(buf, from - chunkStart, from - offset, to - offset);
          this.buffers.set(nr, buf);
          this.scheduleStoring(nr);
        }
      } finally {
        this.locks.unlock(nr);
      }
    }
  }

  /**
   * diff_area_free(): stops copy-on-write and image I/O, lets the store worker
   * finish (queued chunks are dropped, not written), then frees buffers and metadata.
   */
  async shutdown(): Promise<void> {
    this.released = true;
    this.notifyProgress();
    while (this.worker) await this.worker;
    this.storeQueue = [];
    for (const buf of this.buffers.values()) this.pool.release(buf);
    this.buffers.clear();
    this.regions.clear();
    this.pool.cleanup();
  }

  /**
   * Counts for tests and gauges: chunks in memory, chunks with a region of the
   * storage (stored, or given one before a copy not made yet: takeCopies,
   * takeWindow), chunks queued for storing, chunks locked.
   */
  stats(): { inMemory: number; regions: number; queued: number; lockedChunks: number } {
    return { inMemory: this.buffers.size, regions: this.regions.size, queued: this.storeQueue.length, lockedChunks: this.locks.size };
  }
}
