/**
 * The manifest of a backup point (`<point id>.json` in the chain folder): what was
 * backed up, from which CBT state, the hashes of the image at take, and how the point
 * hangs in its chain. Written last: a point without its manifest does not exist.
 */
import { z } from 'zod';
import { BlksnapError } from '../abi/errno.js';

export const MANIFEST_FORMAT = 'blksnap-manager-backup-point';
export const MANIFEST_VERSION = 1;
export const BLOCK_HASH_ALGORITHM = 'bsm64';

const kind = z.enum(['full', 'incremental', 'differential']);
export type PointKind = z.infer<typeof kind>;

const deviceIdentity = z.object({
  path: z.string(),
  size: z.number().int().positive(),
  model: z.string().optional(),
  serial: z.string().optional(),
});
export type DeviceIdentity = z.infer<typeof deviceIdentity>;

export const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  formatVersion: z.literal(MANIFEST_VERSION),
  id: z.string(),
  /** Order of the points in the folder (1, 2, ...). */
  sequence: z.number().int().positive(),
  kind,
  /** The point this one is an overlay of (its backing file), null for a full. */
  parent: z.string().nullable(),
  /** The full point at the root of this point's chain (itself for a full). */
  full: z.string(),
  image: z.object({
    file: z.string(),
    format: z.enum(['qcow2', 'raw']),
    clusterSize: z.number().int().positive(),
    compression: z.enum(['none', 'zlib', 'zstd']),
    /** Size of the image file. */
    fileBytes: z.number().int().nonnegative(),
  }),
  device: deviceIdentity,
  cbt: z.object({
    generationId: z.string(),
    /** The CBT change number of this take: blocks changed after it carry a larger one. */
    changeNumber: z.number().int().min(0).max(255),
    blockSize: z.number().int().positive(),
    blockCount: z.number().int().positive(),
  }),
  hashes: z.object({
    blockAlgorithm: z.literal(BLOCK_HASH_ALGORITHM),
    /** bsm64 of each tracking block of the image at take, 16 hex digits each, concatenated. */
    blocks: z.string(),
    /**
     * SHA-256 of the whole image at take (hex). A full computes it during the backup;
     * an incremental or differential records null (it reads only the changed blocks),
     * and its first successful verify computes it and keeps it in the verify record.
     */
    sha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  }),
  sizes: z.object({
    deviceBytes: z.number().int().positive(),
    /** Guest bytes copied into this point (whole clusters the CBT marked, or the whole device for a full). */
    copiedBytes: z.number().int().nonnegative(),
    /** Tracking blocks whose change number is newer than the parent's. */
    changedBlocks: z.number().int().nonnegative(),
    /** Blocks the CBT called unchanged but whose hash differed from the parent's (copied as well). */
    cbtMissedBlocks: z.number().int().nonnegative(),
  }),
  times: z.object({
    startedAt: z.string(),
    finishedAt: z.string(),
  }),
  tool: z.object({ name: z.string(), version: z.string() }),
});
export type Manifest = z.infer<typeof manifestSchema>;

/** Verification result kept beside a point (`<point id>.verify.json`). */
export const verifyRecordSchema = z.object({
  point: z.string(),
  ok: z.boolean(),
  at: z.string(),
  problems: z.array(z.string()),
  /**
   * SHA-256 of the image the point reads as: the manifest's when it has one, else the
   * one the first verify that found every block hash right computed (later verifies
   * and restores check against it).
   */
  sha256: z.string().regex(/^[0-9a-f]{64}$/).nullable().optional(),
});
export type VerifyRecord = z.infer<typeof verifyRecordSchema>;

export function parseManifest(text: string, file: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new BlksnapError('EINVAL', `${file} is not a backup manifest (not JSON)`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) throw new BlksnapError('EINVAL', `${file} is not a valid backup manifest (${parsed.error.issues[0]?.path.join('.') ?? ''}: ${parsed.error.issues[0]?.message ?? ''})`);
  return parsed.data;
}

/** The hash of tracking block i from a manifest's concatenated list. */
export function manifestBlockHash(m: Manifest, i: number): string {
  return m.hashes.blocks.slice(i * 16, i * 16 + 16);
}

/** "2026-12-01 14:02 UTC": how points are named in messages. */
export function pointTime(m: Pick<Manifest, 'times'>): string {
  const iso = m.times.startedAt;
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}
