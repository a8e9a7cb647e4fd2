/**
 * Plain data crossing the renderer <-> main boundary. They mirror the engine/abi
 * types where there is one (app/shared must not import the engine), with sizes in
 * bytes (the contract speaks bytes; sectors stay inside the engine).
 */

/** Which blksnap driver the helper runs: the kernel module or the embedded userspace engine. */
export type DriverKind = 'kernel' | 'embedded';

export interface VersionInfo {
  major: number;
  minor: number;
  revision: number;
  build: number;
}

/** The helper's connection state, as reported by main (and by the browser client for its socket). */
export type HelperStateName = 'starting' | 'connected' | 'lost' | 'stopped';

export interface HelperState {
  state: HelperStateName;
  /** A plain sentence when the state is lost/stopped ("The helper exited with code 1."). */
  message?: string;
}

/** The blksnap kernel module as the helper found it (mirrors the helper's hello kernelModule). */
export interface KernelModuleHealth {
  loaded: boolean;
  /** 'v6' | 'val7' | 'lk6.15', or null when no usable module was found. */
  dialect: string | null;
  moduleVersion: string | null;
  /** 'block-device' | 'bdevfilter', or null. */
  filter: string | null;
  bdevfilter: boolean;
  /** One plain sentence ("veeamblksnap 7.0.0.0 (VAL-7 dialect) is loaded; bdevfilter is loaded"). */
  summary: string;
  /** What to install or load; null when the module is usable. */
  advice: string | null;
}

export interface AppStatus {
  /** null while the helper is not connected. */
  driver: DriverKind | null;
  /** The blksnap version the driver reports (module version for kernel, engine version for embedded). */
  driverVersion: VersionInfo | null;
  /** The application version (package.json). */
  appVersion: string;
  /** Helper protocol version, when connected. */
  protocolVersion: number | null;
  /** The helper's hello capabilities ([] while not connected); see CBT_ACTIVE_TABLE. */
  capabilities: string[];
  /** The kernel module health line; null while not connected or from an older helper. */
  kernelModule?: KernelModuleHealth | null;
  helper: HelperState;
  /** The engine's chunk size (copied whole on the first write into it), when the helper tells it. */
  chunkBytes?: number;
}

/**
 * A device the user can snapshot. Kernel driver: a block device (lsblk); embedded
 * engine: an engine device (an image file or a fronted block device).
 */
export interface DeviceEntry {
  /** The DeviceRef to pass back in requests (/dev/sdb, or the engine device name). */
  id: string;
  /** A short display name (sdb, disk1). */
  name: string;
  /** Device node or backing image path. */
  path: string;
  kind: 'block' | 'engine';
  sizeBytes: number;
  /** Model or description; "" when unknown. */
  model: string;
  /** Filesystem type found on the device; "" when none/unknown. */
  fstype: string;
  mountpoints: string[];
  /** The blksnap filter is attached (changes are tracked). */
  tracked: boolean;
  /** The snapshot this device is in, or null. */
  snapshotId: string | null;
  /** nbd://host:port/export for the device (embedded engine), or null. */
  nbdUri: string | null;
  /**
   * Block devices with the embedded engine: why the engine cannot open it, in plain
   * words ("mounted at /home", "used as swap", "held by dm-0 (vg-root)"); [] when it can.
   */
  blockedBy: string[];
  /** Engine devices: a lab disk the helper created, the only kind the write workload may overwrite. */
  labDisk: boolean;
  /** Block devices: lsblk TYPE (disk, part, loop, lvm, crypt, raid1, ...); engine devices: "engine". */
  type: string;
  /** Filesystem label; "" when none. */
  label: string;
  /** Block devices: ids (paths) of the devices it sits on, [] for a disk: the device tree. */
  parents: string[];
  /** Its partitions, by start: the kernel's for block devices, the partition table's for engine devices. */
  partitions: PartitionInfo[];
  /**
   * Engine devices: mounted filesystems that write the same bytes without going through the
   * engine (the image on a loop device, the fronted disk mounted), in plain words; [] when none.
   */
  bypass: string[];
}

/** A partition of a device (bytes). */
export interface PartitionInfo {
  number: number;
  startBytes: number;
  sizeBytes: number;
  /** sda1, or the GPT name, or "partition N". */
  name: string;
}

/** A mounted filesystem where a difference-storage file may be put. */
export interface FilesystemEntry {
  mountpoint: string;
  /** Source device (/dev/sda2), or "" when not a block device. */
  source: string;
  fstype: string;
  totalBytes: number;
  freeBytes: number;
}

/**
 * State of a snapshot as the UI shows it:
 * created (devices added, not taken), taken (images exist), failed (an image is
 * corrupted, e.g. the difference storage overflowed).
 */
export type SnapshotState = 'created' | 'taken' | 'failed';

export interface SnapshotDeviceEntry {
  /** The original device (DeviceRef). */
  device: string;
  /** 0, or a negative errno recorded while the snapshot was held (snapshotinfo). */
  errorCode: number;
  /** The errno name of errorCode ("ENOSPC"), or "" when 0. */
  errorName: string;
  /** Snapshot image name (blksnap-image0), "" before take. */
  image: string;
  /** nbd:// URI of the image export, or null (kernel driver / before take). */
  imageNbdUri: string | null;
}

/** Difference-storage gauge of one snapshot (bytes). */
export interface StorageGauge {
  path: string;
  limitBytes: number;
  /** Bytes the storage file has grown to. */
  allocatedBytes: number;
  /** Bytes holding chunks; null where the driver cannot tell (kernel). */
  usedBytes: number | null;
}

export interface SnapshotEntry {
  id: string;
  state: SnapshotState;
  /**
   * The images accept writes (created with writableImages, or the kernel module's
   * image devices): an image may then differ from the take.
   */
  writableImages: boolean;
  devices: SnapshotDeviceEntry[];
  storage: StorageGauge | null;
  /** The name given at create (null: none); kept by the helper. */
  name?: string | null;
  /** When it was created and taken (ms since the epoch), as the helper recorded it. */
  createdMs?: number;
  takenMs?: number | null;
}

/** struct blksnap_cbtinfo, in bytes. */
export interface CbtInfoEntry {
  device: string;
  capacityBytes: number;
  /** Tracking block size in bytes (a power of two). */
  blockSize: number;
  /** Number of tracking blocks (= bytes in the CBT map). */
  blockCount: number;
  /** Change-tracking generation id (UUID); changes when the map is reset (the 255 wrap). */
  generationId: string;
  /** The change number of the last snapshot take (cbtinfo changes_number), 0..255; 0 before any take. */
  changesNumber: number;
}

/**
 * Which CBT table to read. `snapshot`: the module's map (ctl_cbtmap), frozen at the
 * last take. `active`: the table being written (embedded engine only, capability
 * CBT_ACTIVE_TABLE), where writes since the last take already carry the active number.
 */
export type CbtTable = 'snapshot' | 'active';

/**
 * The whole CBT map of a device. Transport encoding: `data` is the map bytes in
 * standard base64 (RFC 4648, with padding): one byte per tracking block, the change
 * number the block was last written in. base64 survives both Electron structured
 * clone and JSON over WebSocket unchanged; decode with decodeBase64() (app/shared/base64.ts).
 */
export interface CbtMapEntry extends CbtInfoEntry {
  /** The table `data` holds. */
  table: CbtTable;
  /**
   * The active change number: the number writes made now get in the active table
   * (changesNumber + 1, or 1 after the 255 wrap).
   */
  activeNumber: number;
  encoding: 'base64';
  data: string;
}

export type WorkloadPattern = 'random' | 'sequential' | 'hotspot';

/** Progress of a write workload on an engine device (sent about every 250 ms while running). */
export interface WorkloadProgress {
  device: string;
  running: boolean;
  pattern: WorkloadPattern;
  /** Requested rate. */
  rateMiBps: number;
  /** Measured rate over the last interval. */
  actualMiBps: number;
  bytesWritten: number;
  writes: number;
  elapsedMs: number;
  /** Set when the workload stopped on an error. */
  error?: string;
}

/** Snapshot event codes (mirrors engine/abi SnapshotEventCode). */
export type SnapshotEventCode = 'low_free_space' | 'corrupted' | 'no_space';

interface SnapshotEventBase {
  snapshotId: string;
  /** Milliseconds since the Unix epoch. */
  timeMs: number;
}

export interface CorruptedEventEntry extends SnapshotEventBase {
  code: 'corrupted';
  device: string;
  devMajor: number;
  devMinor: number;
  /** Negative errno, e.g. -28. */
  errCode: number;
}

export interface LowFreeSpaceEventEntry extends SnapshotEventBase {
  code: 'low_free_space';
  requestedSectors: number;
}

export interface NoSpaceEventEntry extends SnapshotEventBase {
  code: 'no_space';
  requestedSectors: number;
}

/** A snapshot event (same shape as engine/abi SnapshotEvent, so main passes it through). */
export type SnapshotEventEntry = CorruptedEventEntry | LowFreeSpaceEventEntry | NoSpaceEventEntry;

/** The events the helper kept for one snapshot, also after it ended, until dismissed. */
export interface EventHistoryEntry {
  snapshotId: string;
  /** The snapshot's name when its first event came (null: none given). */
  name: string | null;
  /** When the helper saw the snapshot end (ms since the epoch); null while it is held. */
  endedMs: number | null;
  /** Older events the helper left out to keep its bound (low free space ones first). */
  dropped: number;
  /** Oldest first. */
  events: SnapshotEventEntry[];
}

/* ---- Backups (mirror the helper's backup protocol; see docs/backup.md) ---- */

export type BackupKind = 'full' | 'incremental' | 'differential';
export type BackupFormat = 'qcow2' | 'raw';
/** Compressed qcow2 clusters: zlib (deflate; every qemu reads it) or zstd (qemu 5.1 and later). */
export type BackupCompression = 'zlib' | 'zstd';

/** What a chain folder allows for one device (backup.plan). */
export interface BackupPlanEntry {
  /** The device as the helper resolved it. */
  device: string;
  /** DIR/<device-key>: this device's chain folder. */
  chainDir: string;
  /** Existing valid points. */
  points: number;
  lastPoint: { id: string; kind: BackupKind; time: string } | null;
  allowed: BackupKind[];
  /** Why incremental / differential are not allowed, in words (null when they are). */
  reason: string | null;
  /** Estimated bytes an incremental would copy, when known. */
  changedBytes: number | null;
}

export interface BackupPlan {
  devices: BackupPlanEntry[];
}

export type JobKind = 'backup' | 'verify' | 'restore';
export type JobStateName = 'running' | 'done' | 'failed' | 'cancelled';

export interface BackupJobResult {
  kind: 'backup';
  points: {
    device: string;
    chainDir: string;
    pointId: string;
    pointKind: BackupKind;
    /** Why a full was made instead of the kind asked for (allowFull), or null. */
    fullBecause: string | null;
    bytesWritten: number;
    changedBytes: number;
  }[];
}

export interface VerifyJobResult {
  kind: 'verify';
  ok: boolean;
  points: { pointId: string; ok: boolean; problem: string | null }[];
}

export interface RestoreJobResult {
  kind: 'restore';
  target: string;
  bytes: number;
  sha256: string;
  matchesManifest: boolean;
}

export type JobResult = BackupJobResult | VerifyJobResult | RestoreJobResult;

/** A long-running helper job (backup, verify, restore), as onJob and jobs.* report it. */
export interface JobEntry {
  jobId: string;
  kind: JobKind;
  state: JobStateName;
  /** E.g. "Incremental backup of disk1, disk2 to /srv/backup". */
  title: string;
  /** Bytes done of total. */
  done: number;
  total: number;
  bytesPerSecond: number | null;
  etaSeconds: number | null;
  startedAt: string;
  endedAt: string | null;
  error: { code: string; message: string } | null;
  warnings: string[];
  /** Absent / null while running. */
  result: JobResult | null;
}

export type VerifyStatus = 'ok' | 'failed' | 'never';

export interface CatalogPoint {
  id: string;
  kind: BackupKind;
  /** ISO time of the take. */
  time: string;
  parent: string | null;
  fileSize: number;
  changedBytes: number;
  verify: VerifyStatus;
  verifiedAt: string | null;
  file: string;
}

export interface CatalogChain {
  chainDir: string;
  device: { path: string; size: number; model: string | null; serial: string | null };
  points: CatalogPoint[];
}

export interface BackupCatalog {
  dir: string;
  /** Bytes on disk under dir. */
  spaceUsed: number;
  chains: CatalogChain[];
}

/** A point served read-only over NBD (backup.export). */
export interface BackupExport {
  name: string;
  uri: string;
  readOnly: true;
  /** Shell commands that mount it read-only (nbdfuse + losetup + mount -o ro). */
  mountHint: string;
}
