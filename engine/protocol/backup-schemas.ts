/**
 * zod schemas of backup jobs over the helper protocol (docs/backup.md, "Backups
 * through the helper"): plans, job states and results, the catalog of a backup set
 * folder, and browse exports. The method table (methods.ts) assembles them.
 */
import { z } from 'zod';
import { AbsolutePathSchema, DeviceRefSchema, SnapshotIdSchema, UintSchema } from './schemas.js';

export const PointKindSchema = z.enum(['full', 'incremental', 'differential']);
export type PointKindName = z.infer<typeof PointKindSchema>;

/** A backup point id as engine/backup names them (0001-20261201-140200-full). */
export const PointIdSchema = z.string().regex(/^\d{4,}-\d{8}-\d{6}-(full|incremental|differential)$/, 'expected a backup point id (e.g. 0001-20261201-140200-full)');

export const PlanEntrySchema = z.strictObject({
  device: z.string(),
  chainDir: z.string(),
  points: UintSchema,
  lastPoint: z.strictObject({ id: z.string(), kind: PointKindSchema, time: z.string() }).nullable(),
  allowed: z.array(PointKindSchema),
  /** Why incremental/differential are not allowed, in words (null when they are). */
  reason: z.string().nullable(),
  /** Estimated bytes an incremental would copy (changed blocks x block size), when known. */
  changedBytes: UintSchema.nullable(),
});
export type PlanEntry = z.infer<typeof PlanEntrySchema>;

export const BackupJobResultSchema = z.strictObject({
  kind: z.literal('backup'),
  points: z.array(
    z.strictObject({
      device: z.string(),
      chainDir: z.string(),
      pointId: z.string(),
      pointKind: PointKindSchema,
      fullBecause: z.string().nullable(),
      bytesWritten: UintSchema,
      changedBytes: UintSchema,
    }),
  ),
});
export const VerifyJobResultSchema = z.strictObject({
  kind: z.literal('verify'),
  ok: z.boolean(),
  points: z.array(z.strictObject({ pointId: z.string(), ok: z.boolean(), problem: z.string().nullable() })),
});
export const RestoreJobResultSchema = z.strictObject({
  kind: z.literal('restore'),
  target: z.string(),
  bytes: UintSchema,
  sha256: z.string(),
  matchesManifest: z.boolean(),
});
export type BackupJobResult = z.infer<typeof BackupJobResultSchema>;
export type VerifyJobResult = z.infer<typeof VerifyJobResultSchema>;
export type RestoreJobResult = z.infer<typeof RestoreJobResultSchema>;
export const JobResultSchema = z.discriminatedUnion('kind', [BackupJobResultSchema, VerifyJobResultSchema, RestoreJobResultSchema]);
export type JobResult = z.infer<typeof JobResultSchema>;

export const JobKindSchema = z.enum(['backup', 'verify', 'restore']);
export type JobKind = z.infer<typeof JobKindSchema>;

export const JobStateSchema = z.strictObject({
  jobId: z.string(),
  kind: JobKindSchema,
  state: z.enum(['running', 'done', 'failed', 'cancelled']),
  title: z.string(),
  done: UintSchema,
  total: UintSchema,
  bytesPerSecond: z.number().nonnegative().nullable(),
  etaSeconds: z.number().nonnegative().nullable(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  error: z.strictObject({ code: z.string(), message: z.string() }).nullable(),
  warnings: z.array(z.string()),
  /** null while the job runs. */
  result: JobResultSchema.nullable(),
});
export type JobState = z.infer<typeof JobStateSchema>;

export const CatalogPointSchema = z.strictObject({
  id: z.string(),
  kind: PointKindSchema,
  time: z.string(),
  parent: z.string().nullable(),
  fileSize: UintSchema,
  changedBytes: UintSchema,
  verify: z.enum(['ok', 'failed', 'never']),
  verifiedAt: z.string().nullable(),
  file: z.string(),
});

export const CatalogSchema = z.strictObject({
  dir: z.string(),
  spaceUsed: UintSchema,
  chains: z.array(
    z.strictObject({
      chainDir: z.string(),
      device: z.strictObject({ path: z.string(), size: UintSchema, model: z.string().nullable(), serial: z.string().nullable() }),
      points: z.array(CatalogPointSchema),
    }),
  ),
});
export type Catalog = z.infer<typeof CatalogSchema>;

const JobId = z.string().min(1).max(64);

/** The backup entries of the method table. */
export const backupMethods = {
  'backup.plan': {
    params: z.strictObject({ dir: AbsolutePathSchema, snapshotId: SnapshotIdSchema.optional(), devices: z.array(DeviceRefSchema).max(256).optional() }),
    result: z.strictObject({ devices: z.array(PlanEntrySchema) }),
  },
  'backup.start': {
    params: z.strictObject({
      snapshotId: SnapshotIdSchema,
      dir: AbsolutePathSchema,
      devices: z.array(DeviceRefSchema).min(1).max(256).optional(),
      kind: PointKindSchema,
      format: z.enum(['qcow2', 'raw']).optional(),
      compress: z.enum(['zlib', 'zstd']).optional(),
      allowFull: z.boolean().optional(),
    }),
    result: z.strictObject({ jobId: z.string() }),
  },
  'backup.verify': {
    params: z.strictObject({ dir: AbsolutePathSchema, point: PointIdSchema.optional(), compareWithSnapshot: z.boolean().optional() }),
    result: z.strictObject({ jobId: z.string() }),
  },
  'backup.restore': {
    params: z.strictObject({ dir: AbsolutePathSchema, point: PointIdSchema, target: AbsolutePathSchema, force: z.boolean().optional() }),
    result: z.strictObject({ jobId: z.string() }),
  },
  'backup.catalog': { params: z.strictObject({ dir: AbsolutePathSchema }), result: CatalogSchema },
  'backup.export': {
    params: z.strictObject({ dir: AbsolutePathSchema, point: PointIdSchema }),
    result: z.strictObject({ name: z.string(), uri: z.string(), readOnly: z.literal(true), mountHint: z.string() }),
  },
  'backup.unexport': { params: z.strictObject({ name: z.string().min(1).max(200) }), result: z.strictObject({ ok: z.literal(true) }) },
  'jobs.list': { params: z.strictObject({}), result: z.strictObject({ jobs: z.array(JobStateSchema) }) },
  'jobs.cancel': { params: z.strictObject({ jobId: JobId }), result: z.strictObject({ ok: z.literal(true) }) },
  'jobs.wait': {
    params: z.strictObject({ jobId: JobId, timeoutMs: UintSchema.max(24 * 60 * 60 * 1000) }),
    result: z.strictObject({ job: JobStateSchema }),
  },
} as const;
