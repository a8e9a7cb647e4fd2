import type {
  BlksnapVersion,
  CbtInfo,
  DeviceRef,
  SectorRange,
  SnapshotCreateParams,
  SnapshotEvent,
  SnapshotId,
  SnapshotInfo,
  StorageInfo,
} from './types.js';

/**
 * The one interface both drivers implement (engine/kernel over ioctls, engine/core
 * embedded). It mirrors the blksnap v6 ABI one call per ioctl / filter command.
 * Every method rejects with a BlksnapError carrying the errno the module would return.
 */
export interface BlksnapDriver {
  readonly kind: 'kernel' | 'embedded';
  /**
   * True when the module opens the difference storage itself, by the path
   * /proc/self/fd/N of the descriptor it is given (VAL-7.0, lk6.15), and so claims a
   * block device exclusively on its own: the caller must then hand over a
   * descriptor that is not O_EXCL. Otherwise the driver keeps the given descriptor
   * (the engine, or the v6 module's fget): an O_EXCL one claims a block device.
   */
  readonly storageByPath?: boolean;

  /** IOCTL_BLKSNAP_VERSION */
  version(): Promise<BlksnapVersion>;

  /** IOCTL_BLKSNAP_SNAPSHOT_CREATE: creates the storage file and returns the new id. */
  snapshotCreate(params: SnapshotCreateParams): Promise<SnapshotId>;
  /** IOCTL_BLKSNAP_SNAPSHOT_DESTROY: images and storage released; trackers keep tracking. */
  snapshotDestroy(id: SnapshotId): Promise<void>;
  /** IOCTL_BLKSNAP_SNAPSHOT_TAKE: coherent across every device added to the snapshot. */
  snapshotTake(id: SnapshotId): Promise<void>;
  /** IOCTL_BLKSNAP_SNAPSHOT_COLLECT: ids of all snapshots. */
  snapshotCollect(): Promise<SnapshotId[]>;
  /**
   * IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT: the next event, or null when timeoutMs passes
   * with none (the module's -ENOENT). Unknown id: ESRCH, as the module.
   */
  snapshotWaitEvent(id: SnapshotId, timeoutMs: number): Promise<SnapshotEvent | null>;

  /**
   * IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE (VAL-7.0 module only): adds sector ranges of
   * a block device to the snapshot's difference storage. Absent on drivers without it;
   * the kernel driver of another dialect answers EOPNOTSUPP.
   */
  appendStorage?(id: SnapshotId, device: DeviceRef, ranges: SectorRange[]): Promise<void>;
  /** True where storageGrowFile can grow a held snapshot's storage (the kernel driver on VAL-7.0). */
  readonly canGrowStorage?: boolean;
  /**
   * Grows held snapshot `id` by `sectors` with a new, empty file the caller created
   * next to its storage (`fd`, taken over). The caller removes the file after destroy.
   */
  storageGrowFile?(id: SnapshotId, fd: number, path: string, sectors: number): Promise<void>;
  /**
   * After a restart of the caller: the storage files of held snapshot `id` (storage
   * first, then grow files), taken over; true when the driver had mapped them and
   * holds them again (they can then grow and are released at destroy).
   */
  adoptStorage?(id: SnapshotId, files: { fd: number; path: string }[]): Promise<boolean>;
  /** Snapshot `id` was destroyed by another program: release the storage files the driver holds (EBUSY while it still exists). */
  releaseGone?(id: SnapshotId): Promise<void>;

  /** BLKFILTER_ATTACH "blksnap": start tracking (EALREADY if attached). */
  attach(device: DeviceRef): Promise<void>;
  /** BLKFILTER_DETACH: stop tracking (EBUSY while in a snapshot). */
  detach(device: DeviceRef): Promise<void>;
  /** blkfilter_ctl_blksnap_cbtinfo */
  cbtInfo(device: DeviceRef): Promise<CbtInfo>;
  /** blkfilter_ctl_blksnap_cbtmap: `length` bytes of the map from `offset` (may return fewer at the end). */
  cbtMap(device: DeviceRef, offset: number, length: number): Promise<Uint8Array>;
  /** blkfilter_ctl_blksnap_cbtdirty */
  cbtDirty(device: DeviceRef, ranges: SectorRange[]): Promise<void>;
  /** blkfilter_ctl_blksnap_snapshotadd (attaches the filter first if needed) */
  snapshotAdd(id: SnapshotId, device: DeviceRef): Promise<void>;
  /** blkfilter_ctl_blksnap_snapshotinfo */
  snapshotInfo(device: DeviceRef): Promise<SnapshotInfo>;

  /** Difference-storage gauge for a snapshot (not in the kernel ABI; best effort there). */
  storageInfo(id: SnapshotId): Promise<StorageInfo>;

  /** Releases the driver (embedded: destroys snapshots, removes storage files). */
  close(): Promise<void>;
}
