/**
 * zod schemas of the data the helper protocol carries (the abi types, device and
 * image entries, settings). Method params/results are assembled in methods.ts.
 */
import { z } from 'zod';
import { ERRNO } from '../abi/errno.js';
import type { ErrnoName } from '../abi/errno.js';
import { findControlChar } from './control-chars.js';
import { MAX_PATH_LENGTH } from './limits.js';

const errnoNames = Object.keys(ERRNO) as [ErrnoName, ...ErrnoName[]];
export const ErrnoNameSchema = z.enum(errnoNames);

export const UintSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** A snapshot id: canonical lower-case UUID text. */
export const SnapshotIdSchema = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'expected a snapshot id (canonical UUID)');

/**
 * The one check of every name and path a client sends: no control characters (C0
 * including NUL, DEL, C1). The request fails with EINVAL (invalid_params) and a
 * message naming the field: "invalid parameters for images.add: path: contains the
 * control character \n at position 4; ...".
 */
export function noControlChars<T extends z.ZodType<string>>(schema: T): T {
  return schema.check((ctx) => {
    const found = findControlChar(ctx.value);
    if (found !== null) {
      ctx.issues.push({
        code: 'custom',
        input: ctx.value,
        message: `contains the control character ${found.escaped} at position ${found.index}; names and paths may not contain control characters (newline, tab, ESC, DEL and the like)`,
      });
    }
  });
}

/** A device: a block-device path, or (embedded engine) an image's path or name. */
export const DeviceRefSchema = noControlChars(z.string().min(1, 'device must not be empty').max(MAX_PATH_LENGTH));

export const AbsolutePathSchema = noControlChars(
  z
    .string()
    .min(1)
    .max(MAX_PATH_LENGTH)
    .refine((p) => p.startsWith('/'), 'expected an absolute path'),
);

/**
 * The form of a snapshot's difference storage (the forms the blksnap module accepts):
 * - `new-file`: a file created at the path (must not exist), removed at destroy;
 * - `existing-file`: a regular file that exists; its size is the initial capacity;
 *   it is used as it is and never truncated or removed;
 * - `directory`: an unnamed temporary file (O_TMPFILE) in that directory, never
 *   given a name, so nothing is left behind;
 * - `block-device`: a whole block device, opened exclusively; its size is the
 *   capacity and its contents are overwritten.
 */
export const StorageFormSchema = z.enum(['new-file', 'existing-file', 'directory', 'block-device']);
export type StorageForm = z.infer<typeof StorageFormSchema>;

export const DriverKindSchema = z.enum(['kernel', 'embedded']);
export type DriverKind = z.infer<typeof DriverKindSchema>;

/**
 * The kernel module as the helper found it (engine/kernel/detect.ts), for the UI's
 * module health line: present with the kernel driver and with the embedded engine.
 */
export const ModuleHealthSchema = z.strictObject({
  loaded: z.boolean(),
  dialect: z.enum(['v6', 'val7', 'lk6.15']).nullable(),
  moduleVersion: z.string().max(64).nullable(),
  filter: z.enum(['block-device', 'bdevfilter']).nullable(),
  bdevfilter: z.boolean(),
  controlPath: z.string().max(4096).nullable(),
  summary: z.string().max(1000),
  advice: z.string().max(1000).nullable(),
});
export type ModuleHealthWire = z.infer<typeof ModuleHealthSchema>;

export const BlksnapVersionSchema = z.strictObject({
  major: UintSchema,
  minor: UintSchema,
  revision: UintSchema,
  build: UintSchema,
});

export const CbtInfoSchema = z.strictObject({
  deviceCapacity: UintSchema,
  blockSize: UintSchema,
  blockCount: UintSchema,
  generationId: z.string(),
  changesNumber: z.number().int().min(0).max(255),
});

export const SectorRangeSchema = z.strictObject({
  offset: UintSchema,
  count: UintSchema.min(1),
});

export const SnapshotInfoSchema = z.strictObject({
  errorCode: z.number().int(),
  image: z.string(),
  /** Embedded engine: the NBD URI of the snapshot image (when it exists). */
  nbdUri: z.string().optional(),
  /** The snapshot holding the device, as far as the helper knows (optional: added later). */
  snapshotId: SnapshotIdSchema.nullable().optional(),
});

const eventBase = { snapshotId: SnapshotIdSchema, timeMs: UintSchema };
export const SnapshotEventSchema = z.discriminatedUnion('code', [
  z.strictObject({
    ...eventBase,
    code: z.literal('corrupted'),
    device: z.string(),
    devMajor: UintSchema,
    devMinor: UintSchema,
    errCode: z.number().int(),
  }),
  z.strictObject({ ...eventBase, code: z.literal('low_free_space'), requestedSectors: UintSchema }),
  z.strictObject({ ...eventBase, code: z.literal('no_space'), requestedSectors: UintSchema }),
]);

/**
 * The events the helper kept for one snapshot (events.history): bounded, newest
 * last, kept after the snapshot ends until dismissed (events.dismiss).
 */
export const EventHistorySchema = z.strictObject({
  snapshotId: SnapshotIdSchema,
  /** The snapshot's name when its first event came (helper metadata). */
  name: z.string().max(64).nullable(),
  /** When the helper saw the snapshot end (destroyed, or gone while no helper ran); null while it is held. */
  endedMs: UintSchema.nullable(),
  /** Older events left out to keep the bound (low free space ones first). */
  dropped: UintSchema,
  events: z.array(SnapshotEventSchema),
});
export type EventHistory = z.infer<typeof EventHistorySchema>;

export const StorageInfoSchema = z.strictObject({
  snapshotId: SnapshotIdSchema,
  path: z.string(),
  limitSectors: UintSchema,
  allocatedSectors: UintSchema,
  usedSectors: UintSchema.nullable(),
});

/** A partition on a device: from the partition table (images) or the kernel (block devices). */
export const PartitionSchema = z.strictObject({
  number: UintSchema,
  /** Byte offset of its first byte on the device. */
  start: UintSchema,
  size: UintSchema,
  /** The kernel name (sda1) or the GPT partition name, else "partition N". */
  name: z.string(),
});
export type Partition = z.infer<typeof PartitionSchema>;

/** One device the helper can work with. */
export const DeviceEntrySchema = z.strictObject({
  /** What to pass as `device` in other methods. */
  ref: z.string(),
  name: z.string(),
  /** Block-device path or image file path. */
  path: z.string(),
  kind: z.enum(['block', 'image']),
  capacity: UintSchema,
  /** lsblk details where known (block devices). */
  model: z.string().nullable().optional(),
  fsType: z.string().nullable().optional(),
  mountpoints: z.array(z.string()).optional(),
  readOnly: z.boolean().optional(),
  /** Block devices: lsblk TYPE (disk, part, loop, lvm, crypt, raid1, ...). */
  type: z.string().optional(),
  /** Block devices: the filesystem label. */
  label: z.string().nullable().optional(),
  /** Block devices: paths of the devices it sits on ([] for a disk), for the device tree. */
  parents: z.array(z.string()).optional(),
  /** Its partitions, in order of their start; [] when none or unknown. */
  partitions: z.array(PartitionSchema).optional(),
  /**
   * Embedded engine devices: mounted filesystems that reach the same bytes without
   * going through the engine (a loop device on the image, the fronted disk mounted), in plain words.
   */
  bypass: z.array(z.string()).optional(),
  /**
   * Embedded engine, block devices: why the engine cannot front it, in plain words
   * ("mounted at /home", "sda2 is used as swap", "held by dm-0 (vg-root)"); [] when it can.
   */
  blockedBy: z.array(z.string()).optional(),
  /** Image devices: a lab disk the helper created (images.create), the only kind the write workload may overwrite. */
  labDisk: z.boolean().optional(),
  /** The blksnap filter is attached (embedded engine: always known; kernel: null). */
  attached: z.boolean().nullable(),
  snapshotId: SnapshotIdSchema.nullable(),
  nbdUri: z.string().nullable(),
});
export type DeviceEntry = z.infer<typeof DeviceEntrySchema>;

/** A registered disk image. */
export const ImageEntrySchema = z.strictObject({
  name: z.string(),
  path: z.string(),
  capacity: UintSchema,
  /** Embedded engine: the NBD URI of the device (writes go through the tracker). */
  nbdUri: z.string().nullable(),
});
export type ImageEntry = z.infer<typeof ImageEntrySchema>;

export const ExportEntrySchema = z.strictObject({
  name: z.string(),
  kind: z.enum(['device', 'snapshot-image', 'backup']),
  uri: z.string(),
  capacity: UintSchema,
  readOnly: z.boolean(),
  /** Snapshot images: the snapshot and original device (backup exports: null and the chain folder). */
  snapshotId: SnapshotIdSchema.nullable(),
  device: z.string().nullable(),
});
export type ExportEntry = z.infer<typeof ExportEntrySchema>;

export const SnapshotSummarySchema = z.strictObject({
  id: SnapshotIdSchema,
  devices: z.array(z.string()),
  taken: z.boolean(),
  storagePath: z.string().nullable(),
  limitSectors: UintSchema.nullable(),
  /**
   * The snapshot's images accept writes: its NBD image exports are read-write
   * (snapshotCreate writableImages), or the kernel module's image devices (always
   * writable). A backup of such a snapshot must warn that an image may differ from
   * the take.
   */
  writableImages: z.boolean(),
  /** The name the user gave at snapshotCreate (helper metadata, kept across restarts). */
  name: z.string().max(64).nullable().optional(),
  /** When the snapshot was created and taken (ms since the epoch; helper metadata). */
  createdMs: UintSchema.optional(),
  takenMs: UintSchema.nullable().optional(),
});
export type SnapshotSummary = z.infer<typeof SnapshotSummarySchema>;

export const SettingsSchema = z.strictObject({
  /** Directory the app proposes for difference-storage files (null: none chosen). */
  diffStorageDir: AbsolutePathSchema.nullable(),
  /** Default difference-storage limit, in sectors. */
  diffStorageLimitSectors: UintSchema.min(1),
  /** Snapshot-event wait used by the helper's event pump, in milliseconds. */
  eventPollMs: z.number().int().min(50).max(60_000),
});
export type Settings = z.infer<typeof SettingsSchema>;

export const DEFAULT_SETTINGS: Settings = {
  diffStorageDir: null,
  diffStorageLimitSectors: 2 * 1024 * 1024, // 1 GiB
  eventPollMs: 500,
};

export const WorkloadPatternSchema = z.enum(['random', 'sequential', 'hotspot']);
export type WorkloadPattern = z.infer<typeof WorkloadPatternSchema>;

/** Progress of a write workload on an engine device. */
export const WorkloadProgressSchema = z.strictObject({
  device: z.string(),
  running: z.boolean(),
  pattern: WorkloadPatternSchema,
  /** Requested rate. */
  rateMiBps: z.number().nonnegative(),
  /** Measured rate over the last report interval. */
  actualMiBps: z.number().nonnegative(),
  bytesWritten: UintSchema,
  writes: UintSchema,
  elapsedMs: UintSchema,
  /** Set when the workload stopped on an error. */
  error: z.string().optional(),
});
export type WorkloadProgress = z.infer<typeof WorkloadProgressSchema>;

export const TopicSchema = z.enum(['event', 'snapshot', 'devices', 'progress', 'workload', 'job']);
export type Topic = z.infer<typeof TopicSchema>;
