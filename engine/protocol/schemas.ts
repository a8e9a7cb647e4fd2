/**
 * zod schemas of the data the helper protocol carries (the abi types, device and
 * image entries, settings). Method params/results are assembled in methods.ts.
 */
import { z } from 'zod';
import { ERRNO } from '../abi/errno.js';
import type { ErrnoName } from '../abi/errno.js';
import { MAX_PATH_LENGTH } from './limits.js';

const errnoNames = Object.keys(ERRNO) as [ErrnoName, ...ErrnoName[]];
export const ErrnoNameSchema = z.enum(errnoNames);

export const UintSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** A snapshot id: canonical lower-case UUID text. */
export const SnapshotIdSchema = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'expected a snapshot id (canonical UUID)');

/** A device: a block-device path, or (embedded engine) an image's path or name. */
export const DeviceRefSchema = z.string().min(1, 'device must not be empty').max(MAX_PATH_LENGTH);

export const AbsolutePathSchema = z
  .string()
  .min(1)
  .max(MAX_PATH_LENGTH)
  .refine((p) => p.startsWith('/'), 'expected an absolute path')
  .refine((p) => !p.includes('\0'), 'path contains a NUL byte');

export const DriverKindSchema = z.enum(['kernel', 'embedded']);
export type DriverKind = z.infer<typeof DriverKindSchema>;

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

export const StorageInfoSchema = z.strictObject({
  snapshotId: SnapshotIdSchema,
  path: z.string(),
  limitSectors: UintSchema,
  allocatedSectors: UintSchema,
  usedSectors: UintSchema.nullable(),
});

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
