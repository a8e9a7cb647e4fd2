/**
 * The one method table of the helper protocol: method name -> params schema and
 * result schema. The daemon validates every request against it and clients validate
 * every result, so both ends agree by construction.
 */
import { z } from 'zod';
import {
  MAX_CBT_MAP_LENGTH,
  MAX_DIRTY_RANGES,
  MAX_WAIT_EVENT_TIMEOUT_MS,
  PROTOCOL_VERSION,
} from './limits.js';
import { CBT_MAP_ENCODING } from './cbt-encoding.js';
import { JobStateSchema, backupMethods } from './backup-schemas.js';
import {
  AbsolutePathSchema,
  BlksnapVersionSchema,
  CbtInfoSchema,
  DeviceEntrySchema,
  DeviceRefSchema,
  DriverKindSchema,
  EventHistorySchema,
  ModuleHealthSchema,
  ExportEntrySchema,
  ImageEntrySchema,
  noControlChars,
  SectorRangeSchema,
  SettingsSchema,
  SnapshotEventSchema,
  SnapshotIdSchema,
  SnapshotInfoSchema,
  SnapshotSummarySchema,
  StorageFormSchema,
  StorageInfoSchema,
  TopicSchema,
  UintSchema,
  WorkloadPatternSchema,
  WorkloadProgressSchema,
} from './schemas.js';

/** Which CBT table a cbtMap request reads (see methods.cbtMap). */
export const CbtTableSchema = z.enum(['snapshot', 'active']);
export type CbtTable = z.infer<typeof CbtTableSchema>;

/** hello capability: cbtMap accepts `table: 'active'` (embedded driver only). */
export const CBT_ACTIVE_TABLE_CAPABILITY = 'cbt-active-table';
/** hello capability: storageGrow raises a held snapshot's storage (embedded engine; kernel driver on VAL-7.0, new-file storage). */
export const STORAGE_GROW_CAPABILITY = 'storage-grow';

/** hello capability: events.history and events.dismiss (the helper keeps the events of each snapshot). */
export const EVENT_HISTORY_CAPABILITY = 'event-history';

const Empty = z.strictObject({});
const Device = z.strictObject({ device: DeviceRefSchema });
const SnapshotRef = z.strictObject({ id: SnapshotIdSchema });
const Ok = z.strictObject({ ok: z.literal(true) });
const ImageName = noControlChars(
  z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'image names use letters, digits, ".", "_" and "-"'),
);

export const HelloResultSchema = z.strictObject({
  protocolVersion: z.number().int(),
  driver: DriverKindSchema,
  driverVersion: z.string(),
  capabilities: z.array(z.string()),
  /** The kernel module found at start (absent from older helpers). */
  kernelModule: ModuleHealthSchema.optional(),
  /** The smallest chunk copied on first write (2^chunk_minimum_shift bytes), where the helper knows it. */
  chunkMinimumBytes: z.number().int().positive().optional(),
});

export const methods = {
  /** Handshake: the client's protocol version; the helper answers with its own and the driver. */
  hello: {
    params: z.strictObject({ protocolVersion: z.number().int().min(1), client: noControlChars(z.string().max(200)).optional() }),
    result: HelloResultSchema,
  },
  /** The driver's version; with the kernel driver also the module's dialect and filter mechanism. */
  version: {
    params: Empty,
    result: BlksnapVersionSchema.extend({
      dialect: z.enum(['v6', 'val7', 'lk6.15']).optional(),
      filter: z.enum(['block-device', 'bdevfilter']).optional(),
    }),
  },
  snapshotCreate: {
    params: z.strictObject({
      diffStoragePath: AbsolutePathSchema,
      /** What diffStoragePath names (default `new-file`): see StorageFormSchema. */
      diffStorageForm: StorageFormSchema.optional(),
      limitSectors: UintSchema.min(1),
      /** Devices added right after creation (each as snapshotAdd). */
      devices: z.array(DeviceRefSchema).max(256).optional(),
      /**
       * Export the snapshot's images writable (embedded engine; writes land in the
       * difference storage, as with the module's images). Default false: read-only.
       */
      writableImages: z.boolean().optional(),
      /** A name for people (kept by the helper, shown by snapshots.list). */
      name: noControlChars(z.string().trim().min(1).max(64)).optional(),
    }),
    result: z.strictObject({ id: SnapshotIdSchema }),
  },
  snapshotDestroy: { params: SnapshotRef, result: Ok },
  snapshotTake: {
    params: SnapshotRef.extend({
      /** Mount points to freeze around the take (FIFREEZE/FITHAW), beside those the helper detects. */
      freeze: z.array(AbsolutePathSchema).max(64).optional(),
    }),
    result: z.strictObject({
      ok: z.literal(true),
      /** The file systems frozen around the take, and for how long writers waited. */
      frozen: z
        .array(z.strictObject({ mountPoint: z.string(), how: z.enum(['detected', 'asked']), frozenMs: UintSchema, freezeMs: UintSchema }))
        .optional(),
    }),
  },
  snapshotCollect: { params: Empty, result: z.strictObject({ ids: z.array(SnapshotIdSchema) }) },
  snapshotWaitEvent: {
    params: z.strictObject({ id: SnapshotIdSchema, timeoutMs: UintSchema.max(MAX_WAIT_EVENT_TIMEOUT_MS) }),
    result: z.strictObject({ event: SnapshotEventSchema.nullable() }),
  },
  snapshotAdd: { params: z.strictObject({ id: SnapshotIdSchema, device: DeviceRefSchema }), result: Ok },
  snapshotInfo: { params: Device, result: SnapshotInfoSchema },
  storageInfo: { params: SnapshotRef, result: StorageInfoSchema },
  /** Raises a held snapshot's difference-storage limit by `sectors` (STORAGE_GROW_CAPABILITY). */
  storageGrow: {
    params: z.strictObject({ id: SnapshotIdSchema, sectors: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER) }),
    result: Ok,
  },
  /**
   * The event history the helper keeps per snapshot (EVENT_HISTORY_CAPABILITY), held
   * and ended snapshots alike, the most recently active first; `id`: that snapshot only.
   */
  'events.history': {
    params: z.strictObject({ id: SnapshotIdSchema.optional() }),
    result: z.strictObject({ snapshots: z.array(EventHistorySchema) }),
  },
  /** Forgets a snapshot's event history (a held snapshot's history starts again empty); ESRCH if there is none. */
  'events.dismiss': { params: SnapshotRef, result: Ok },
  'snapshots.list': { params: Empty, result: z.strictObject({ snapshots: z.array(SnapshotSummarySchema) }) },
  attach: { params: Device, result: Ok },
  detach: { params: Device, result: Ok },
  cbtInfo: { params: Device, result: CbtInfoSchema },
  /**
   * A portion of the CBT map. `table: 'snapshot'` (the default) is the module's
   * ctl_cbtmap: the read table, frozen at the last take. `table: 'active'` is an
   * engine extension (capability CBT_ACTIVE_TABLE_CAPABILITY): the write table, where
   * writes since the last take already carry the active change number; the kernel
   * driver answers EOPNOTSUPP.
   */
  cbtMap: {
    params: z.strictObject({
      device: DeviceRefSchema,
      offset: UintSchema,
      length: UintSchema.min(1).max(MAX_CBT_MAP_LENGTH),
      table: CbtTableSchema.optional(),
    }),
    result: z.strictObject({
      offset: UintSchema,
      /** Bytes of map returned (fewer than asked at the end of the map). */
      length: UintSchema,
      encoding: z.literal(CBT_MAP_ENCODING),
      data: z.string(),
    }),
  },
  cbtDirty: {
    params: z.strictObject({ device: DeviceRefSchema, ranges: z.array(SectorRangeSchema).min(1).max(MAX_DIRTY_RANGES) }),
    result: Ok,
  },
  'devices.list': { params: Empty, result: z.strictObject({ devices: z.array(DeviceEntrySchema) }) },
  'images.create': {
    params: z.strictObject({ path: AbsolutePathSchema, size: UintSchema.min(512), name: ImageName.optional() }),
    result: ImageEntrySchema,
  },
  'images.add': { params: z.strictObject({ path: AbsolutePathSchema, name: ImageName.optional() }), result: ImageEntrySchema },
  'images.list': { params: Empty, result: z.strictObject({ images: z.array(ImageEntrySchema) }) },
  /** Unregisters an image (by name or path); the file itself is kept. */
  'images.remove': { params: z.strictObject({ image: DeviceRefSchema }), result: Ok },
  'exports.list': {
    params: Empty,
    result: z.strictObject({ socketPath: z.string().nullable(), exports: z.array(ExportEntrySchema) }),
  },
  /** Embedded engine: write to an engine device at rateMiBps (EALREADY if one runs there). */
  'workload.start': {
    params: z.strictObject({ device: DeviceRefSchema, rateMiBps: z.number().positive().max(100_000), pattern: WorkloadPatternSchema }),
    result: Ok,
  },
  /** Stops the workload on a device (ESRCH if none runs). */
  'workload.stop': { params: Device, result: Ok },
  'workload.list': { params: Empty, result: z.strictObject({ workloads: z.array(WorkloadProgressSchema) }) },
  'settings.get': { params: Empty, result: SettingsSchema },
  'settings.set': { params: SettingsSchema.partial().strict(), result: SettingsSchema },
  subscribe: { params: z.strictObject({ topics: z.array(TopicSchema).min(1).optional() }), result: z.strictObject({ topics: z.array(TopicSchema) }) },
  unsubscribe: { params: z.strictObject({ topics: z.array(TopicSchema).min(1).optional() }), result: z.strictObject({ topics: z.array(TopicSchema) }) },
  /** Backup jobs (backup-schemas.ts): plan, start, verify, restore, catalog, browse; jobs.list/cancel/wait. */
  ...backupMethods,
} as const satisfies Record<string, { params: z.ZodType; result: z.ZodType }>;

export type MethodTable = typeof methods;
export type MethodName = keyof MethodTable;
export type MethodParams<M extends MethodName> = z.input<MethodTable[M]['params']>;
export type MethodResult<M extends MethodName> = z.output<MethodTable[M]['result']>;

export function isMethodName(name: string): name is MethodName {
  return Object.prototype.hasOwnProperty.call(methods, name);
}

/** Notifications the helper sends to subscribed clients: name -> params schema. */
export const notifications = {
  /** A snapshot event (corrupted, low_free_space, no_space) as the driver reported it. */
  event: SnapshotEventSchema,
  /** Snapshot lifecycle: created, a device added, taken, destroyed. */
  snapshot: z.strictObject({
    id: SnapshotIdSchema,
    state: z.enum(['created', 'device-added', 'taken', 'storage-grown', 'destroyed']),
    device: z.string().optional(),
    /** With `taken`: the file systems frozen around the take and how long writers waited (ms). */
    frozen: z.array(z.strictObject({ mountPoint: z.string(), frozenMs: UintSchema })).optional(),
  }),
  /** The device or image list changed. */
  devices: z.strictObject({ reason: z.string() }),
  /** Progress of a long operation. */
  progress: z.strictObject({ operation: z.string(), done: UintSchema, total: UintSchema.nullable() }),
  /** Write-workload progress (about every 250 ms while it runs, and once when it stops). */
  workload: WorkloadProgressSchema,
  /** A backup, verify or restore job: at most every 250 ms while it runs (result null), and once when it ends. */
  job: JobStateSchema,
} as const satisfies Record<z.infer<typeof TopicSchema>, z.ZodType>;

export type NotificationName = keyof typeof notifications;
export type NotificationParams<N extends NotificationName> = z.output<(typeof notifications)[N]>;

export { PROTOCOL_VERSION };
