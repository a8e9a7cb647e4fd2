/**
 * The points of a chain folder and the rules for continuing a chain. A chain may go
 * on (incremental or differential) only when the device is the same (identity and
 * size), the CBT generation id is unchanged, the parent point and everything it
 * builds on exist, and none of them failed verification. Otherwise the refusal
 * says why in words, and a new full is made only when the caller allows it.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BlksnapError } from '../abi/errno.js';
import type { ErrnoName } from '../abi/errno.js';
import { formatSize } from '../devices/size.js';
import { parseManifest, pointTime, verifyRecordSchema } from './manifest.js';
import type { DeviceIdentity, Manifest, PointKind, VerifyRecord } from './manifest.js';
import { MANIFEST_SUFFIX, POINT_ID_RE, VERIFY_SUFFIX } from './point-files.js';

export type ChainBreak =
  | 'no-chain'
  | 'chain-exists'
  | 'other-device'
  | 'resized'
  | 'generation'
  | 'block-size'
  | 'missing-parent'
  | 'failed-verification'
  | 'same-take';

/** A chain cannot continue (or a full would start a new chain): `reason` is the plain-words why. */
export class ChainBreakError extends BlksnapError {
  constructor(
    errno: ErrnoName,
    readonly code: ChainBreak,
    readonly reason: string,
  ) {
    super(errno, code === 'chain-exists' ? reason : `the backup chain cannot continue: ${reason}`);
  }
}

/**
 * Parsed manifests by path, with the file's identity when parsed. A manifest is never
 * rewritten in place (it is written once, under a partial name, then renamed), so an
 * unchanged inode, size and change time mean unchanged content. This keeps the fixed
 * cost of an incremental (which plans over every point of the folder) from growing
 * with the chain: only the stat of each manifest remains.
 */
const manifestCache = new Map<string, { ino: number; size: number; ctimeMs: number; manifest: Manifest }>();
const MANIFEST_CACHE_SIZE = 256;

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function cacheManifest(path: string, st: { ino: number; size: number; ctimeMs: number }, manifest: Manifest): Manifest {
  const frozen = deepFreeze(structuredClone(manifest));
  manifestCache.delete(path);
  manifestCache.set(path, { ino: st.ino, size: st.size, ctimeMs: st.ctimeMs, manifest: frozen });
  if (manifestCache.size > MANIFEST_CACHE_SIZE) manifestCache.delete(manifestCache.keys().next().value!);
  return frozen;
}

/** A point's manifest (parsed once per version of the file; the result is frozen). */
async function readManifest(path: string): Promise<Manifest> {
  const st = await stat(path);
  const hit = manifestCache.get(path);
  if (hit && hit.ino === st.ino && hit.size === st.size && hit.ctimeMs === st.ctimeMs) return hit.manifest;
  return cacheManifest(path, st, parseManifest(await readFile(path, 'utf8'), path));
}

/**
 * Tells the cache the manifest just written at `path` (so the next point of the chain
 * does not parse it again); the file's identity is taken now, as readManifest checks it.
 */
export async function rememberManifest(path: string, manifest: Manifest): Promise<void> {
  cacheManifest(path, await stat(path), manifest);
}

/** The valid points of a folder, oldest first (by sequence). */
export async function loadPoints(dir: string): Promise<Manifest[]> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  const manifests = names.filter((name) => name.endsWith(MANIFEST_SUFFIX) && !name.endsWith(VERIFY_SUFFIX) && POINT_ID_RE.test(name.slice(0, -MANIFEST_SUFFIX.length)));
  const out = await Promise.all(manifests.map((name) => readManifest(join(dir, name))));
  return out.sort((a, b) => a.sequence - b.sequence);
}

export async function readVerifyRecord(dir: string, id: string): Promise<VerifyRecord | null> {
  const text = await readFile(join(dir, `${id}${VERIFY_SUFFIX}`), 'utf8').catch(() => null);
  if (text === null) return null;
  const parsed = verifyRecordSchema.safeParse(JSON.parse(text));
  return parsed.success ? parsed.data : null;
}

export interface ChainCbt {
  generationId: string;
  changeNumber: number;
  blockSize: number;
}

export interface PlanRequest {
  dir: string;
  kind: PointKind;
  device: DeviceIdentity;
  cbt: ChainCbt;
  /** Make a full backup when the chain cannot continue (or a chain exists and a full is asked for). */
  allowFull?: boolean;
}

export interface Plan {
  kind: PointKind;
  /** The point the new one is an overlay of; null for a full. */
  parent: Manifest | null;
  /** The chain's full (the new point itself for a full: null). */
  full: Manifest | null;
  /** When a full is made because the chain could not continue: why. */
  fullBecause: string | null;
  /** Every point in the folder. */
  points: Manifest[];
}

function describeDevice(d: DeviceIdentity): string {
  const extra = [d.model, d.serial ? `serial ${d.serial}` : undefined].filter(Boolean).join(', ');
  return extra ? `${d.path} (${extra})` : d.path;
}

/** Why `device` is not the device of `point`, or null when it is the same. */
function deviceMismatch(point: Manifest, device: DeviceIdentity): ChainBreakError | null {
  const was = point.device;
  const bySerial = was.serial !== undefined && device.serial !== undefined;
  const same = bySerial
    ? was.serial === device.serial && (was.model === undefined || device.model === undefined || was.model === device.model)
    : was.path === device.path;
  if (!same) {
    return new ChainBreakError('EINVAL', 'other-device', `the chain backs up ${describeDevice(was)}, not ${describeDevice(device)}`);
  }
  if (was.size !== device.size) {
    const how = device.size > was.size ? 'grew' : 'shrank';
    return new ChainBreakError('EINVAL', 'resized', `the device ${how} from ${formatSize(was.size)} to ${formatSize(device.size)}`);
  }
  return null;
}

/** The links of a point's ancestry from the manifests, itself first, down to its full (or to a broken link). */
function links(dir: string, point: Manifest, byId: Map<string, Manifest>): { chain: Manifest[]; broken: ChainBreakError | null } {
  const chain: Manifest[] = [];
  let broken: ChainBreakError | null = null;
  for (let at: Manifest | undefined = point; at; ) {
    chain.push(at);
    if (at.parent === null) break;
    if (chain.length > byId.size) {
      broken = new ChainBreakError('EINVAL', 'missing-parent', `the backups of ${dir} name each other as parents in a loop`);
      break;
    }
    const child: Manifest = at;
    at = byId.get(at.parent);
    if (!at) broken = new ChainBreakError('ENOENT', 'missing-parent', `the backup ${child.parent} that ${pointTime(child)} builds on is missing`);
  }
  return { chain, broken };
}

/**
 * The ancestry of a point, itself first, down to its full, with each point's verify
 * record; throws when a link or an image is missing. The images and the records are
 * read at once (one round of file system calls), the images' problems reported first,
 * in chain order.
 */
async function ancestry(dir: string, point: Manifest, byId: Map<string, Manifest>): Promise<{ lineage: Manifest[]; records: (VerifyRecord | null)[] }> {
  const { chain, broken } = links(dir, point, byId);
  const [present, records] = await Promise.all([
    Promise.all(chain.map((m) => stat(join(dir, m.image.file)).then((s) => s.size === m.image.fileBytes, () => false))),
    Promise.all(chain.map((p) => readVerifyRecord(dir, p.id))),
  ]);
  for (const [i, m] of chain.entries()) {
    if (!present[i]) {
      const which = i === 0 ? 'the previous backup' : 'the backup';
      throw new ChainBreakError('ENOENT', 'missing-parent', `${which} ${pointTime(m)} is missing (its image ${m.image.file} is gone or incomplete)`);
    }
  }
  if (broken) throw broken;
  return { lineage: chain, records };
}

/** Decides the kind and parent of a new point, or refuses with the reason. */
export async function planPoint(req: PlanRequest): Promise<Plan> {
  const points = await loadPoints(req.dir);
  const full = (why: string | null): Plan => ({ kind: 'full', parent: null, full: null, fullBecause: why, points });
  const last = points[points.length - 1];
  if (req.kind === 'full') {
    if (last && !req.allowFull) {
      throw new ChainBreakError('EEXIST', 'chain-exists', `${req.dir} already holds a backup chain (last point ${pointTime(last)}); a new full backup there needs an explicit allow-full`);
    }
    return full(null);
  }
  try {
    if (!last) throw new ChainBreakError('ENOENT', 'no-chain', `there is no backup in ${req.dir} to continue from`);
    const byId = new Map(points.map((p) => [p.id, p]));
    const root = last.full === last.id ? last : byId.get(last.full);
    const parent = req.kind === 'incremental' ? last : root;
    if (!parent) throw new ChainBreakError('ENOENT', 'missing-parent', `the full backup ${last.full} that ${pointTime(last)} builds on is missing`);
    const mismatch = deviceMismatch(parent, req.device);
    if (mismatch) throw mismatch;
    if (parent.cbt.generationId !== req.cbt.generationId) {
      throw new ChainBreakError('EINVAL', 'generation', 'the change tracker was reset (new generation id: the machine rebooted or the module was reloaded)');
    }
    if (parent.cbt.blockSize !== req.cbt.blockSize) {
      throw new ChainBreakError('EINVAL', 'block-size', `the change tracker's block size changed from ${formatSize(parent.cbt.blockSize)} to ${formatSize(req.cbt.blockSize)}`);
    }
    const { lineage, records } = await ancestry(req.dir, parent, byId);
    for (const [i, p] of lineage.entries()) {
      const record = records[i];
      if (record && !record.ok) {
        const which = p === parent ? 'the previous backup' : 'the backup';
        throw new ChainBreakError('EIO', 'failed-verification', `${which} ${pointTime(p)} failed verification (${record.problems[0] ?? 'no details'})`);
      }
    }
    if (req.cbt.changeNumber <= parent.cbt.changeNumber) {
      throw new ChainBreakError('EALREADY', 'same-take', `the previous backup ${pointTime(parent)} was made from this take or a later one (change number ${parent.cbt.changeNumber}, now ${req.cbt.changeNumber})`);
    }
    return { kind: req.kind, parent, full: lineage[lineage.length - 1]!, fullBecause: null, points };
  } catch (err) {
    if (err instanceof ChainBreakError && req.allowFull) return full(err.reason);
    throw err;
  }
}
