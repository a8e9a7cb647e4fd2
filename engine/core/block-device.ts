/**
 * The block-device abstraction the embedded engine works on, and what the NBD
 * server exports. Offsets and lengths are in bytes and must be multiples of the
 * 512-byte sector and inside the capacity; anything else is rejected with EINVAL
 * (BlksnapError) before any byte is written.
 */
export interface BlockDevice extends BlockDeviceMaps {
  /** Short name, unique within the engine (e.g. "disk1", "blksnap-image0"). */
  readonly name: string;
  /** Capacity in bytes (a multiple of 512). */
  readonly capacity: number;
  readonly logicalBlockSize: number;
  readonly physicalBlockSize: number;
  readonly readOnly: boolean;

  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Optional: like read(), into target[targetOffset, targetOffset+length) instead of
   * a new buffer (lets a server read straight into its reply frame). Same checks and
   * errors as read().
   */
  readTo?(offset: number, length: number, target: Buffer, targetOffset: number): Promise<void>;
  /**
   * Optional fast path: reads like readTo(), synchronously, when the data can be
   * had without waiting for the disk (from the page cache). Returns false when it
   * cannot (nothing promised about `target` then): the caller uses readTo().
   * Range errors throw as in read().
   */
  readToNow?(offset: number, length: number, target: Buffer, targetOffset: number): boolean;
  /**
   * Optional: where [offset, offset+length) lies in a file, when those bytes are
   * exactly the file's bytes there and are the device's live data (a server may
   * then send them from the page cache by reference, sendfile(2)). Never for a
   * snapshot image or anything whose bytes are assembled. Null when this range
   * cannot be had that way now. Range errors throw as in read().
   */
  liveFileRange?(offset: number, length: number): LiveFileRange | null;
  /**
   * Optional fast path: writes like write() without FUA (the buffers back to
   * back), synchronously, when the device can take the write at once (no
   * copy-on-write to do first, a small write the page cache absorbs quickly).
   * Returns false, having written nothing, when it cannot: the caller uses
   * write(). Range and I/O errors throw.
   */
  writeNow?(offset: number, data: readonly Buffer[]): boolean;
  /**
   * Optional: lets the caller write [offset, offset+length) itself, straight
   * into a file (pwrite on another thread, as the bytes arrive), as write()
   * without FUA would. The device does its part of a write (the I/O gate, the
   * change map, copy-on-write: the copies it gives the caller to make first)
   * around it: until end() is called, the device counts the write as running.
   * `onFreeze` is called if a snapshot is about to be taken meanwhile: the
   * caller should then not begin writing if it has not yet, and end as soon as
   * it can. Null when the device cannot take the write that way now
   * (copy-on-write it cannot hand out, the gate frozen, a range it does not
   * hold in one file): the caller uses write().
   */
  fileWriteTarget?(offset: number, length: number, onFreeze: () => void): FileWriteTarget | null;
  /**
   * Optional: lets the caller write any number of plain writes into the
   * device's file itself, from another thread, until end(): what
   * fileWriteTarget() gives for one write, for a run of them. The caller
   * marks each write in `marks` before making it and, while a snapshot is
   * taken, makes its copy-on-write first (`cow`). `next`: the byte where the
   * writes are expected to begin (copy-on-write is handed out from there). A
   * freeze, or anyone who waits for a chunk the caller holds, asks it to give
   * way (onFreeze) and waits for end(). Null when the device cannot offer it
   * now.
   */
  fileWriteStream?(onFreeze: () => void, next?: number): FileWriteStream | null;
  /**
   * Optional: like write() of the buffers back to back (one pwritev, no joining
   * copy). Same checks and errors as write(). As for every write, the device
   * must not keep the buffers once the promise settles: the NBD server reuses
   * them for the next payloads.
   */
  writev?(offset: number, data: readonly Buffer[], options?: { fua?: boolean }): Promise<void>;
  /** fua: the data is durable when the promise resolves. */
  write(offset: number, data: Uint8Array, options?: { fua?: boolean }): Promise<void>;
  flush(): Promise<void>;
  /** Discard (TRIM): the range may read back as anything afterwards; the engine writes zeroes. */
  discard(offset: number, length: number): Promise<void>;
  writeZeroes(offset: number, length: number): Promise<void>;
}

/** Bytes of a device found in a file (BlockDevice.liveFileRange). */
export interface LiveFileRange {
  /** The open file's descriptor (the device's own; the caller must not close it). */
  fd: number;
  /** Where the range starts in the file. */
  position: number;
}

/** Where the caller of BlockDevice.fileWriteTarget() writes, and how it says it is done. */
export interface FileWriteTarget {
  /** The open file's descriptor (the device's own; the caller must not close it). */
  fd: number;
  /** Where the range starts in the file. */
  position: number;
  /**
   * In-kernel copies (copy_file_range) the caller must make, all of them,
   * before it writes: the old data of the range's chunks that still need
   * copy-on-write, moved to the difference storage. If one fails, the caller
   * must not write, and ends with written false and copyFailed true. Absent:
   * none.
   */
  copies?: readonly FileCopy[];
  /** False when the device could not offer fileWriteStream() now: the caller need not ask. */
  streamable: boolean;
  /**
   * Call exactly once, when the bytes are in the file (`written`) or will not
   * be written this way (then nothing of the range was written; `copyFailed`:
   * because a copy failed).
   */
  end(written: boolean, copyFailed?: boolean): void;
}

/** One in-kernel copy of FileWriteTarget.copies: `length` bytes from posIn of fdIn to posOut of fdOut. */
export interface FileCopy {
  fdIn: number;
  posIn: number;
  fdOut: number;
  posOut: number;
  length: number;
}

/** Where the caller of BlockDevice.fileWriteStream() writes, and what it marks. */
export interface FileWriteStream {
  /** The open file's descriptor (the device's own; the caller must not close it). */
  fd: number;
  /** Where the device's byte 0 is in the file. */
  base: number;
  /** The device's size in bytes: no write may pass it. */
  size: number;
  /**
   * The live CBT write table to mark before each write (each byte a block of
   * 2^shift bytes, raised to `number`), or null when the device is not
   * tracked. It stays the same table until end().
   */
  marks: ChangeMarks | null;
  /** The copy-on-write each write must be preceded by, while a snapshot is taken; null when none can be needed. */
  cow: StreamCow | null;
  /** Call once, when no more writes (or copies) will be made (the gate is left, the chunks held given back). */
  end(): void;
}

/**
 * The copy-on-write of a write stream (FileWriteStream.cow), in shared memory.
 * Before each write, for every chunk the write touches whose state (`states`)
 * is NEW (0: its old data is only in the original): if it is one of the
 * window's chunks (first + k, k < count, targets[k] >= 0), the caller copies
 * it, once (copied[k] 0), from `fdIn` at its device offset to `fdOut` at
 * targets[k] (copy_file_range, a chunk of 2^chunkShift bytes, shorter at the
 * device's end), and sets copied[k] to 1, or to 2 if the copy failed (then it
 * must not write, and should end). A NEW chunk outside the window: the caller
 * must not make that write itself. Other states never go back to NEW, and
 * need nothing.
 */
export interface StreamCow {
  states: Uint8Array;
  chunkShift: number;
  fdIn: number;
  fdOut: number;
  first: number;
  count: number;
  targets: Float64Array;
  copied: Uint8Array;
}

/** A CBT write table marked from another thread (BlockDevice.fileWriteStream). */
export interface ChangeMarks {
  /** One byte per tracking block, in shared memory. */
  table: Uint8Array;
  shift: number;
  number: number;
}

/** A run of a device's address space, as extents() describes it. */
export interface BlockExtent {
  offset: number;
  length: number;
  /** Nothing is allocated there: the run reads as zeroes. */
  hole: boolean;
}

/**
 * The change-tracking table behind a device: one change number per tracking
 * block (a block written while change number K was active holds K). Live: the
 * table is the engine's own, read at each call.
 */
export interface ChangeMap {
  /** Bytes per tracking block. */
  blockBytes: number;
  /** One change number per block (0: never written since the table was made). */
  numbers: Uint8Array;
  /** The newest change number a block may hold in this table. */
  newest: number;
  /** Identifies the table: numbers of different generations are not comparable. */
  generationId: string;
}

/** Optional capabilities of a BlockDevice beyond reading and writing. */
export interface BlockDeviceMaps {
  /**
   * The allocation of [offset, offset+length): consecutive runs covering the
   * whole range, in order. Same range checks as read(). With `maxRuns`, the
   * answer may stop once it has that many runs (covering only the start of the
   * range): a caller that needs one run (NBD's REQ_ONE) does not pay for a
   * walk of the whole range.
   */
  extents?(offset: number, length: number, maxRuns?: number): Promise<BlockExtent[]>;
  /**
   * Optional fast path: extents() answered synchronously, for a device that finds
   * its holes without waiting (an image file's lseek(SEEK_DATA/SEEK_HOLE): one
   * cheap system call that does not touch the data). Same result and errors.
   */
  extentsNow?(offset: number, length: number, maxRuns?: number): BlockExtent[];
  /** The change-tracking table, or undefined when the device has none now. */
  changeMap?(): ChangeMap | undefined;
}
