/**
 * Plain data types of the blksnap control ABI (seed 000, include/uapi/linux/blksnap.h v6),
 * shared by both drivers. Sizes are in bytes unless a name says sectors (512 bytes).
 */

export const SECTOR_SIZE = 512;
export const SECTOR_SHIFT = 9;

/** A snapshot id: the 16-byte blksnap_uuid as a lower-case canonical UUID string. */
export type SnapshotId = string;

/**
 * How a device is named to a driver. Kernel driver: a block device path (/dev/sdb).
 * Embedded engine: the name of an engine device, or the path of its image file.
 */
export type DeviceRef = string;

export interface BlksnapVersion {
  major: number;
  minor: number;
  revision: number;
  build: number;
}

/** struct blksnap_cbtinfo */
export interface CbtInfo {
  /** Device capacity in bytes. */
  deviceCapacity: number;
  /** Tracking block size in bytes (a power of two). */
  blockSize: number;
  /** Number of tracking blocks, i.e. bytes in the CBT map. */
  blockCount: number;
  /** Change-tracking generation id (UUID string); changes when the map is reset. */
  generationId: string;
  /** The current (active) change number, 0..255. */
  changesNumber: number;
}

/** struct blksnap_sectors */
export interface SectorRange {
  /** Offset from the start of the device, in sectors. */
  offset: number;
  /** Count of sectors. */
  count: number;
}

/** struct blksnap_snapshotinfo */
export interface SnapshotInfo {
  /** 0, or a negative errno (-ENOSPC = overflow) recorded while the snapshot was held. */
  errorCode: number;
  /** The snapshot image's block device name (e.g. "blksnap-image0"), or "" before take. */
  image: string;
}

export interface SnapshotCreateParams {
  /**
   * Path of the difference-storage file. The driver creates it (O_EXCL: an existing
   * file is never reused or overwritten) and the engine removes it on destroy.
   */
  diffStoragePath: string;
  /** Maximum size the difference storage may grow to, in sectors. */
  limitSectors: number;
  /**
   * A descriptor of the difference storage, opened by the caller, who checked it
   * with the user's rights (engine/helper/storage-forms.ts). The object it refers
   * to is the storage form (the driver asks fstat, nothing else is passed):
   * - a regular file: new and empty, or existing (its size is the initial capacity,
   *   grown by fallocate up to the limit, never truncated), or an unnamed O_TMPFILE
   *   file (the directory form);
   * - a block device: its size is the whole capacity (O_EXCL for the embedded engine
   *   and v6; not O_EXCL where `driver.storageByPath`, whose module opens it
   *   exclusively itself).
   * The driver uses it instead of creating a file at diffStoragePath (then only its
   * name, for messages), takes it over (closes it, also when the call fails) and
   * never removes anything: the caller does, for a file it created.
   */
  diffStorageFd?: number;
  /**
   * Ask for storage that can grow while the snapshot is held: a new, empty file is
   * reserved to the limit and handed to the module as sector ranges (VAL-7.0's
   * append mode), so more files can be appended later. Where that is impossible
   * (another module, a file system without a block device or FIEMAP) the storage is
   * the module's own file, which cannot grow.
   */
  growable?: boolean;
}

/**
 * Event codes. The v6 ABI defines `corrupted` (0); the v5 series also sends
 * `low_free_space`; newer module versions send `no_space` when the storage limit is hit.
 */
export type SnapshotEventCode = 'low_free_space' | 'corrupted' | 'no_space';

export interface SnapshotEventBase {
  snapshotId: SnapshotId;
  /** Milliseconds since the Unix epoch when the event was queued. */
  timeMs: number;
}

export interface CorruptedEvent extends SnapshotEventBase {
  code: 'corrupted';
  /** The original device the image of which is corrupted. */
  device: DeviceRef;
  devMajor: number;
  devMinor: number;
  /** Negative errno, e.g. -28 (-ENOSPC). */
  errCode: number;
}

export interface LowFreeSpaceEvent extends SnapshotEventBase {
  code: 'low_free_space';
  /** Sectors the engine would like added (one diff_storage_minimum portion). */
  requestedSectors: number;
}

export interface NoSpaceEvent extends SnapshotEventBase {
  code: 'no_space';
  /** Sectors that were requested and could not be allocated. */
  requestedSectors: number;
}

export type SnapshotEvent = CorruptedEvent | LowFreeSpaceEvent | NoSpaceEvent;

/** Difference-storage use of one snapshot (for gauges; not part of the kernel ABI). */
export interface StorageInfo {
  snapshotId: SnapshotId;
  path: string;
  limitSectors: number;
  /** Sectors of disk space the storage file really holds (reserved, not merely requested). */
  allocatedSectors: number;
  /** Sectors holding chunks; null where the driver cannot tell (kernel). */
  usedSectors: number | null;
}
