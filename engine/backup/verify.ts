/**
 * Verify a backup point without restoring it: the chain under it is complete and
 * linked as the manifests say, and the image it reads as has the per-block hashes and
 * the SHA-256 recorded at take. The result is kept beside the point
 * (`<id>.verify.json`); a chain does not continue from a point that failed.
 */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BlksnapError } from '../abi/errno.js';
import { imageBlockHash } from './block-hash.js';
import { loadPoints, readVerifyRecord } from './chain.js';
import { readImage } from './image-source.js';
import type { ImageSource } from './image-source.js';
import { manifestBlockHash } from './manifest.js';
import type { Manifest, VerifyRecord } from './manifest.js';
import { VERIFY_SUFFIX, writeFileAtomic } from './point-files.js';
import { checkCancelled } from './progress.js';
import { createSha256 } from './sha256-process.js';
import type { Sha256Stream } from './sha256-process.js';
import type { JobOptions } from './progress.js';
import { Qcow2Image, openImage } from './qcow2-reader.js';

const CHUNK = 4 * 1024 * 1024;
const MAX_BLOCK_PROBLEMS = 10;

export interface VerifyResult extends VerifyRecord {
  /** Bytes of the image read. */
  bytes: number;
}

/** The manifest of `id` in dir, or ENOENT. */
export async function findPoint(dir: string, id: string): Promise<{ point: Manifest; points: Manifest[] }> {
  const points = await loadPoints(dir);
  const point = points.find((p) => p.id === id);
  if (!point) throw new BlksnapError('ENOENT', `there is no backup point ${id} in ${dir}`);
  return { point, points };
}

/** Problems with the files of a point's chain (missing links, wrong sizes, wrong backing files). */
async function chainProblems(dir: string, point: Manifest, points: Manifest[], image: ImageSource | null): Promise<string[]> {
  const byId = new Map(points.map((p) => [p.id, p]));
  const problems: string[] = [];
  const lineage: Manifest[] = [];
  for (let at: Manifest | undefined = point; at; at = at.parent === null ? undefined : byId.get(at.parent)) {
    lineage.push(at);
    const size = await stat(join(dir, at.image.file)).then((s) => s.size, () => -1);
    if (size < 0) problems.push(`the image file ${at.image.file} is missing`);
    else if (size !== at.image.fileBytes) problems.push(`the image file ${at.image.file} has ${size} bytes, its manifest says ${at.image.fileBytes}`);
    if (at.parent !== null && !byId.has(at.parent)) problems.push(`the backup ${at.parent} that ${at.id} builds on is missing`);
  }
  if (image instanceof Qcow2Image) {
    const files = image.chain().map((c) => c.path);
    const expected = lineage.map((m) => resolve(dir, m.image.file));
    if (files.join('\n') !== expected.join('\n')) {
      problems.push(`the image chain is ${files.join(' -> ')}, the manifests say ${expected.join(' -> ')}`);
    }
  }
  return problems;
}

/** Reads an image in chunks of whole tracking blocks, calling `each` in order. */
export async function scanImage(
  image: ImageSource,
  blockSize: number,
  what: string,
  opts: JobOptions,
  each: (offset: number, data: Buffer) => Promise<void> | void,
): Promise<number> {
  const unit = Math.max(CHUNK, blockSize);
  const total = image.virtualSize;
  opts.onProgress?.({ done: 0, total });
  const readAt = (at: number): Promise<Buffer> => readImage(image, at, Math.min(unit, total - at));
  let pending: Promise<Buffer> | null = total > 0 ? readAt(0) : null;
  try {
    for (let at = 0; at < total; at += unit) {
      const data = await pending!;
      pending = at + unit < total ? readAt(at + unit) : null;
      checkCancelled(opts.signal, what);
      await each(at, data);
      opts.onProgress?.({ done: at + data.length, total });
    }
  } finally {
    await pending?.catch(() => undefined);
  }
  return total;
}

/** Compares per-block hashes of a chunk with the manifest's; returns the problems. */
export function blockProblems(point: Manifest, offset: number, data: Buffer): string[] {
  const bs = point.cbt.blockSize;
  const out: string[] = [];
  for (let b = offset / bs; b * bs < offset + data.length; b++) {
    const piece = data.subarray(b * bs - offset, Math.min((b + 1) * bs, point.device.size) - offset);
    if (imageBlockHash(piece) !== manifestBlockHash(point, b)) out.push(`tracking block ${b} (bytes ${b * bs}-${b * bs + piece.length - 1}) differs from the image at take`);
  }
  return out;
}

/**
 * The SHA-256 the image of a point must have: the manifest's (a full, or a point made
 * with sha256 on), else the one its first successful verify computed, else null.
 */
export async function knownSha256(dir: string, point: Manifest): Promise<string | null> {
  if (point.hashes.sha256 !== null) return point.hashes.sha256;
  const record = await readVerifyRecord(dir, point.id);
  return record?.ok === true ? (record.sha256 ?? null) : null;
}

export async function verifyPoint(dir: string, id: string, opts: JobOptions = {}): Promise<VerifyResult> {
  checkCancelled(opts.signal, 'verification');
  const { point, points } = await findPoint(dir, id);
  const problems: string[] = [];
  let image: (ImageSource & { close(): Promise<void> }) | null = null;
  let sha: Sha256Stream | null = null;
  let bytes = 0;
  const expected = await knownSha256(dir, point);
  let sha256: string | null = expected;
  try {
    image = await openImage(join(dir, point.image.file), point.image.format).catch((err: unknown) => {
      problems.push(`the image cannot be opened: ${(err as Error).message}`);
      return null;
    });
    problems.push(...(await chainProblems(dir, point, points, image)));
    if (image && image.virtualSize !== point.device.size) {
      problems.push(`the image holds ${image.virtualSize} bytes, the device had ${point.device.size}`);
    } else if (image) {
      const hasher = createSha256();
      sha = hasher;
      let blockIssues: string[] = [];
      bytes = await scanImage(image, point.cbt.blockSize, 'verification', opts, async (offset, data) => {
        if (blockIssues.length < MAX_BLOCK_PROBLEMS) blockIssues = blockIssues.concat(blockProblems(point, offset, data));
        await hasher.update(data, true);
      });
      problems.push(...blockIssues.slice(0, MAX_BLOCK_PROBLEMS));
      const digest = await hasher.digest();
      if (expected !== null && digest !== expected) {
        problems.push(`the SHA-256 of the image is ${digest}, the image at take had ${expected}${point.hashes.sha256 === null ? ' (computed by its first verify)' : ''}`);
      }
      // A point without a SHA-256 in its manifest gets it from its first verify in which every block hash matched.
      if (expected === null && problems.length === 0) sha256 = digest;
    }
  } finally {
    await sha?.close();
    await image?.close();
  }
  const record: VerifyRecord = { point: id, ok: problems.length === 0, at: new Date().toISOString(), problems, sha256 };
  await writeFileAtomic(dir, `${id}${VERIFY_SUFFIX}`, `${JSON.stringify(record, null, 1)}\n`);
  return { ...record, bytes };
}

/** Verifies every point from the chain's full up to `id`, oldest first. */
export async function verifyChain(dir: string, id: string, opts: JobOptions = {}): Promise<VerifyResult[]> {
  const { point, points } = await findPoint(dir, id);
  const byId = new Map(points.map((p) => [p.id, p]));
  const lineage: string[] = [];
  for (let at: Manifest | undefined = point; at; at = at.parent === null ? undefined : byId.get(at.parent)) lineage.unshift(at.id);
  const out: VerifyResult[] = [];
  for (const p of lineage) out.push(await verifyPoint(dir, p, opts));
  return out;
}
