/**
 * THE contract between the renderer and the main process (Electron IPC through the
 * preload) or the browser-mode server (WebSocket, see wire.ts).
 *
 * - A request is `name(params?) => Promise<Result<T>>`. It never rejects: failures are
 *   `{ ok: false, error: { code, message, detail? } }` (result.ts).
 * - An event stream is named `on...`: `onX(callback) => unsubscribe`.
 * - Every request takes at most one params object (plain JSON data), so bridges can be
 *   built generically from CONTRACT_METHODS.
 *
 * Backups: `backup...` requests start helper jobs (backup, verify, restore) and
 * answer with their id; `onJob` streams the jobs' progress (docs/backup.md).
 */
import type { Result } from './result.js';
import type {
  AppStatus,
  BackupCatalog,
  BackupExport,
  BackupCompression,
  BackupFormat,
  BackupKind,
  BackupPlan,
  JobEntry,
  CbtInfoEntry,
  CbtMapEntry,
  CbtTable,
  DeviceEntry,
  EventHistoryEntry,
  FilesystemEntry,
  HelperState,
  SnapshotEntry,
  SnapshotEventEntry,
  WorkloadPattern,
  WorkloadProgress,
} from './types.js';

export interface DeviceParams {
  /** DeviceEntry.id */
  device: string;
}

export interface CbtMapParams extends DeviceParams {
  /** Default 'snapshot'; 'active' needs the CBT_ACTIVE_TABLE capability (else EOPNOTSUPP). */
  table?: CbtTable;
}

export interface SnapshotIdParams {
  snapshotId: string;
}

export interface CreateLabDiskParams {
  /** Engine device name; the image file is created in the helper's lab directory. */
  name?: string;
  /** Or an explicit image path (must not exist). One of name / path is required. */
  path?: string;
  /** Size in bytes (a multiple of 512, > 0). */
  sizeBytes: number;
}

export interface AddImageParams {
  /** Path of an existing image file (or block device for the engine to front). */
  path: string;
  /** Engine device name; defaults to the file's base name. */
  name?: string;
}

export interface StorageAllocationEntry {
  /** Absolute directory the difference-storage files go to. */
  directory: string;
  limitBytes: number;
}

export interface GrowStorageParams {
  snapshotId: string;
  /** Bytes the storage may hold on top of its limit (at least 512). */
  addBytes: number;
}

/**
 * The form of the difference storage (the helper's diffStorageForm): a new file
 * (default; removed with the snapshot), an unnamed temporary file in a directory
 * (nothing left behind), an existing regular file (its size is the starting
 * capacity; kept), or a whole unused block device (overwritten).
 */
export type StorageForm = 'new-file' | 'directory' | 'existing-file' | 'block-device';

export interface SnapshotCreateParams {
  /** DeviceEntry ids to add to the snapshot (at least one). */
  devices: string[];
  /** The difference storage: the file to create (must not exist; O_EXCL), or what `storageForm` says. */
  storagePath: string;
  /** What storagePath names; default `new-file`. */
  storageForm?: StorageForm;
  /** Limit the storage may grow to, in bytes (rounded down to sectors by main). */
  limitBytes: number;
  /**
   * Export the snapshot's images read-write (writes land in the difference storage).
   * Default false: read-only images, which keep the contents of the take.
   */
  writableImages?: boolean;
  /** A name for people (1–64 characters), kept by the helper. */
  name?: string;
}

export interface SnapshotCreated {
  snapshotId: string;
}

export interface WorkloadStartParams {
  device: string;
  /** Write rate in MiB/s (> 0). */
  rateMiBps: number;
  pattern: WorkloadPattern;
}

export interface BackupPlanParams {
  /** The backup folder (a chain set: one chain folder per device). */
  dir: string;
  snapshotId?: string;
  devices?: string[];
}

export interface BackupStartParams {
  snapshotId: string;
  dir: string;
  devices?: string[];
  kind: BackupKind;
  format?: BackupFormat;
  compress?: BackupCompression;
  /** Make a new full backup when the chain cannot continue (else the job fails with the reason). */
  allowFull?: boolean;
}

export interface BackupVerifyParams {
  dir: string;
  point?: string;
  /** Also compare with the snapshot image while the snapshot is held. */
  compareWithSnapshot?: boolean;
}

export interface BackupRestoreParams {
  dir: string;
  point: string;
  /** A new image file, or an existing file / block device (absolute path). */
  target: string;
  /** Allow restoring onto the device the backup was taken from. */
  force?: boolean;
}

export interface BackupDirParams {
  dir: string;
}

export interface BackupExportParams {
  dir: string;
  point: string;
}

export interface ExportNameParams {
  name: string;
}

export interface JobIdParams {
  jobId: string;
}

export interface JobWaitParams extends JobIdParams {
  timeoutMs: number;
}

export interface JobStarted {
  jobId: string;
}

/** Requests: name -> params (undefined: none) and result value. */
export interface RequestMap {
  /** Driver kind, versions, helper state. */
  getStatus: { params: undefined; result: AppStatus };
  /** Restart / reconnect the helper; resolves with the new status. */
  reconnect: { params: undefined; result: AppStatus };
  listDevices: { params: undefined; result: DeviceEntry[] };
  /** Embedded engine: create a sparse image file and open it as an engine device. */
  createLabDisk: { params: CreateLabDiskParams; result: DeviceEntry };
  /** Embedded engine: open an existing image as an engine device. */
  addImage: { params: AddImageParams; result: DeviceEntry };
  /** Embedded engine: close an engine device (EBUSY while in a snapshot). The file is kept. */
  removeImage: { params: DeviceParams; result: null };
  /** Mounted filesystems with free / total bytes (where difference storage can go). */
  listFilesystems: { params: undefined; result: FilesystemEntry[] };
  /** The difference-storage allocation the helper keeps (null: none yet). */
  getStorageAllocation: { params: undefined; result: StorageAllocationEntry | null };
  /** Records the allocation in the helper (limit rounded down to sectors); returns it as kept. */
  setStorageAllocation: { params: StorageAllocationEntry; result: StorageAllocationEntry };
  snapshotCreate: { params: SnapshotCreateParams; result: SnapshotCreated };
  snapshotTake: { params: SnapshotIdParams; result: null };
  snapshotDestroy: { params: SnapshotIdParams; result: null };
  /** Raises a held snapshot's storage limit by `addBytes` (rounded down to sectors; needs STORAGE_GROW). */
  snapshotGrowStorage: { params: GrowStorageParams; result: null };
  /**
   * The events the helper kept per snapshot (held and ended ones, the most recently
   * active first): what the timeline shows after a reload or in another tab.
   */
  listEventHistory: { params: undefined; result: EventHistoryEntry[] };
  /** Forgets a snapshot's kept events (ESRCH when there are none). */
  dismissEventHistory: { params: SnapshotIdParams; result: null };
  /** All snapshots (collect) with per-device snapshotinfo and the storage gauge. */
  listSnapshots: { params: undefined; result: SnapshotEntry[] };
  cbtInfo: { params: DeviceParams; result: CbtInfoEntry };
  /** The whole CBT map of the chosen table, base64 (see CbtMapEntry). */
  cbtMap: { params: CbtMapParams; result: CbtMapEntry };
  /** Embedded engine: start a write workload on an engine device (EALREADY if one runs). */
  workloadStart: { params: WorkloadStartParams; result: null };
  /** Stop the workload on a device (ESRCH if none runs). */
  workloadStop: { params: DeviceParams; result: null };
  /** Per device: what the backup folder's chain allows (kinds, and the reason in words when only full). */
  backupPlan: { params: BackupPlanParams; result: BackupPlan };
  /** Starts a backup job of a taken snapshot into the folder. */
  backupStart: { params: BackupStartParams; result: JobStarted };
  /** Starts a verify job (re-reads the chain against its manifests). */
  backupVerify: { params: BackupVerifyParams; result: JobStarted };
  /** Starts a restore job of one point to a target. */
  backupRestore: { params: BackupRestoreParams; result: JobStarted };
  /** The chains and points of a backup folder. */
  backupCatalog: { params: BackupDirParams; result: BackupCatalog };
  /** Serves a point read-only over NBD (browse). */
  backupExport: { params: BackupExportParams; result: BackupExport };
  backupUnexport: { params: ExportNameParams; result: null };
  /** Running jobs and the last finished ones. */
  jobsList: { params: undefined; result: JobEntry[] };
  /** ESRCH for an unknown job. */
  jobsCancel: { params: JobIdParams; result: null };
  /** Answers when the job ends or the timeout passes (then with its current state). */
  jobsWait: { params: JobWaitParams; result: JobEntry };
}

/** Event streams: name -> payload. */
export interface EventMap {
  onSnapshotEvent: SnapshotEventEntry;
  onHelperState: HelperState;
  onWorkloadProgress: WorkloadProgress;
  /** Job progress (at most every 250 ms per job while it runs) and its end (with the result). */
  onJob: JobEntry;
}

export type RequestName = keyof RequestMap;
export type EventName = keyof EventMap;
export type MethodName = RequestName | EventName;

export type RequestParams<K extends RequestName> = RequestMap[K]['params'];
export type RequestResult<K extends RequestName> = RequestMap[K]['result'];

export type Unsubscribe = () => void;

export type RequestFn<K extends RequestName> = RequestParams<K> extends undefined
  ? () => Promise<Result<RequestResult<K>>>
  : (params: RequestParams<K>) => Promise<Result<RequestResult<K>>>;

export type EventFn<K extends EventName> = (callback: (payload: EventMap[K]) => void) => Unsubscribe;

/**
 * The API object: what the preload exposes as `window.blksnap`, and what the
 * browser-mode client implements over WebSocket.
 */
export type BlksnapApi = { [K in RequestName]: RequestFn<K> } & { [K in EventName]: EventFn<K> };

export interface MethodDescriptor {
  name: MethodName;
  /** true: an event stream (`onX(callback) => unsubscribe`); false: a request. */
  event: boolean;
  /** Requests: whether it takes a params object. */
  hasParams: boolean;
}

const REQUEST_HAS_PARAMS: { [K in RequestName]: RequestParams<K> extends undefined ? false : true } = {
  getStatus: false,
  reconnect: false,
  listDevices: false,
  createLabDisk: true,
  addImage: true,
  removeImage: true,
  listFilesystems: false,
  getStorageAllocation: false,
  setStorageAllocation: true,
  snapshotCreate: true,
  snapshotTake: true,
  snapshotDestroy: true,
  snapshotGrowStorage: true,
  listEventHistory: false,
  dismissEventHistory: true,
  listSnapshots: false,
  cbtInfo: true,
  cbtMap: true,
  workloadStart: true,
  workloadStop: true,
  backupPlan: true,
  backupStart: true,
  backupVerify: true,
  backupRestore: true,
  backupCatalog: true,
  backupExport: true,
  backupUnexport: true,
  jobsList: false,
  jobsCancel: true,
  jobsWait: true,
};

const EVENTS: { [K in EventName]: true } = {
  onSnapshotEvent: true,
  onHelperState: true,
  onWorkloadProgress: true,
  onJob: true,
};

export const REQUEST_NAMES = Object.keys(REQUEST_HAS_PARAMS) as RequestName[];
export const EVENT_NAMES = Object.keys(EVENTS) as EventName[];

/** Every method of the contract, for building bridges generically (preload, IPC handlers, WebSocket). */
export const CONTRACT_METHODS: readonly MethodDescriptor[] = [
  ...REQUEST_NAMES.map((name) => ({ name, event: false, hasParams: REQUEST_HAS_PARAMS[name] })),
  ...EVENT_NAMES.map((name) => ({ name, event: true, hasParams: false })),
];

export function isRequestName(value: unknown): value is RequestName {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(REQUEST_HAS_PARAMS, value);
}

export function isEventName(value: unknown): value is EventName {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(EVENTS, value);
}

/** Electron IPC channel of a request (ipcMain.handle / ipcRenderer.invoke). */
export function requestChannel(name: RequestName): string {
  return `blksnap:${name}`;
}

/** Electron IPC channel of an event stream (webContents.send / ipcRenderer.on). */
export function eventChannel(name: EventName): string {
  return `blksnap:event:${name}`;
}
