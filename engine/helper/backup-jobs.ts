/**
 * Backup jobs of the helper (docs/backup.md, "Backups through the helper"): plans,
 * backup sets (one point per device of a taken snapshot, all from the same take),
 * verification and the catalog of a set folder. Every folder is reached with the
 * rights of the user the helper works for (backup-dir.ts); restore is in
 * backup-restore.ts, browsing in backup-exports.ts.
 */
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BlksnapError } from '../abi/errno.js';
import type { SnapshotId } from '../abi/types.js';
import { ChainBreakError, Qcow2Image, backupPoint, changedBytes, loadPoints, openImage, planPoint, readVerifyRecord, verifyPoint } from '../backup/index.js';
import type { Manifest } from '../backup/index.js';
import { compareImages, describeDifferences } from '../backup/compare.js';
import type { JobOptions } from '../backup/progress.js';
import type { BackupJobResult, Catalog, JobState, PlanEntry, PointKindName, VerifyJobResult } from '../protocol/backup-schemas.js';
import type { HelperBackends } from './backends.js';
import { BackupDir, deviceKey } from './backup-dir.js';
import { deviceIdentity, openDeviceSource, readCbtMap } from './backup-source.js';
import type { DeviceSource, SourceOptions } from './backup-source.js';
import type { CallerFs } from './caller-fs.js';
import type { JobRunner } from './jobs.js';
import type { SnapshotBook } from './snapshot-book.js';

export const WRITABLE_IMAGES_WARNING = "the snapshot's images are writable: the backup may differ from the take";

export interface BackupJobsDeps {
  backends: HelperBackends;
  book: SnapshotBook;
  files: CallerFs;
  jobs: JobRunner;
  /** A client's device reference -> the driver's. */
  resolveDevice(ref: string): Promise<string>;
  source?: SourceOptions;
}

export interface StartBackup {
  snapshotId: SnapshotId;
  dir: string;
  devices?: string[];
  kind: PointKindName;
  format?: 'qcow2' | 'raw';
  compress?: 'zlib' | 'zstd';
  allowFull?: boolean;
}

function pointTimeText(m: Manifest): string {
  return m.times.startedAt;
}

/** The chains of a set folder: its sub-folders holding points, or the folder itself when it is a chain. */
async function chainsOf(set: BackupDir): Promise<{ key: string | null; path: string; points: Manifest[] }[]> {
  const own = await loadPoints(set.base);
  if (own.length > 0) return [{ key: null, path: set.base, points: own }];
  const out = [];
  for (const key of set.chainKeys()) {
    const points = await loadPoints(set.chain(key)).catch(() => [] as Manifest[]);
    if (points.length > 0) out.push({ key, path: set.chain(key), points });
  }
  return out;
}

/** Where a point of a set folder (or of a chain folder) is. */
export async function findSetPoint(set: BackupDir, point: string): Promise<{ key: string | null; path: string; manifest: Manifest }> {
  const hits = [];
  for (const chain of await chainsOf(set)) {
    const manifest = chain.points.find((p) => p.id === point);
    if (manifest) hits.push({ key: chain.key, path: chain.path, manifest });
  }
  if (hits.length === 0) throw new BlksnapError('ENOENT', `there is no backup point ${point} in ${set.path}`);
  if (hits.length > 1) {
    throw new BlksnapError('EINVAL', `the backup point ${point} is in several chains of ${set.path} (${hits.map((h) => h.key).join(', ')}): name the chain folder (e.g. ${set.path}/${hits[0]!.key})`);
  }
  return hits[0]!;
}

/**
 * Checks the files of a point's chain before the helper (root) reads them: the
 * manifests must name plain files `<id>.<format>` that are regular files reached
 * without symlinks. Returns the expected image paths, the point's own first.
 */
export async function checkPointFiles(set: BackupDir, found: { key: string | null; path: string; manifest: Manifest }): Promise<string[]> {
  const points = await loadPoints(found.path);
  const byId = new Map(points.map((p) => [p.id, p]));
  const expected: string[] = [];
  for (let at: Manifest | undefined = found.manifest; at; at = at.parent === null ? undefined : byId.get(at.parent)) {
    if (at.image.file !== `${at.id}.${at.image.format}`) throw new BlksnapError('EINVAL', `the manifest of ${at.id} names the image "${at.image.file}", not ${at.id}.${at.image.format}`);
    set.checkRegular(found.key, at.image.file);
    expected.push(resolve(found.path, at.image.file));
    if (at.parent !== null && !byId.has(at.parent)) throw new BlksnapError('ENOENT', `the backup ${at.parent} that ${at.id} builds on is missing`);
  }
  return expected;
}

/**
 * Opens the image of a point for reading (restore, browse), after checkPointFiles;
 * the qcow2 backing chain must be exactly those files: a folder the user controls
 * cannot make the helper (root) read anything else.
 */
export async function openPointImage(set: BackupDir, found: { key: string | null; path: string; manifest: Manifest }): Promise<Awaited<ReturnType<typeof openImage>>> {
  const expected = await checkPointFiles(set, found);
  const image = await openImage(join(found.path, found.manifest.image.file), found.manifest.image.format);
  const files = image instanceof Qcow2Image ? image.chain().map((c) => c.path) : [image.path];
  if (files.join('\n') !== expected.join('\n')) {
    await image.close();
    throw new BlksnapError('EINVAL', `the image chain of ${found.manifest.id} is not the one its manifests describe`);
  }
  return image;
}

export class BackupJobs {
  constructor(private readonly deps: BackupJobsDeps) {}

  /** The devices of a taken snapshot (or the listed ones of it), resolved. */
  private async snapshotDevices(snapshotId: SnapshotId, refs: string[] | undefined): Promise<{ devices: string[]; warnings: string[] }> {
    const record = this.deps.book.get(snapshotId);
    if (!record) throw new BlksnapError('ENOENT', `no snapshot ${snapshotId} (snapshots.list shows them)`);
    if (!record.taken) throw new BlksnapError('EINVAL', `snapshot ${snapshotId} is not taken yet: take the snapshot first`);
    if (record.devices.length === 0) throw new BlksnapError('EINVAL', `snapshot ${snapshotId} holds no devices`);
    let devices = record.devices;
    if (refs && refs.length > 0) {
      devices = [];
      for (const ref of refs) {
        const d = await this.deps.resolveDevice(ref);
        if (!record.devices.includes(d)) throw new BlksnapError('EINVAL', `device ${d} is not in snapshot ${snapshotId}`);
        if (!devices.includes(d)) devices.push(d);
      }
    }
    // another branch adds writableImages to the snapshot record; read it defensively
    const warnings = (record as { writableImages?: boolean }).writableImages === true ? [WRITABLE_IMAGES_WARNING] : [];
    return { devices, warnings };
  }

  async plan(params: { dir: string; snapshotId?: SnapshotId; devices?: string[] }): Promise<{ devices: PlanEntry[] }> {
    let devices: string[];
    if (params.snapshotId) devices = (await this.snapshotDevices(params.snapshotId, params.devices)).devices;
    else if (params.devices && params.devices.length > 0) devices = await Promise.all(params.devices.map((d) => this.deps.resolveDevice(d)));
    else throw new BlksnapError('EINVAL', 'name a snapshot (snapshotId) or devices to plan a backup for');
    const set = await BackupDir.open(this.deps.files, params.dir, false);
    try {
      const out: PlanEntry[] = [];
      for (const device of devices) out.push(await this.planDevice(set, device));
      return { devices: out };
    } finally {
      set.close();
    }
  }

  private async planDevice(set: BackupDir, device: string): Promise<PlanEntry> {
    const key = deviceKey(device);
    const chainPath = set.chain(key);
    const points = await loadPoints(chainPath);
    const last = points[points.length - 1];
    const entry: PlanEntry = {
      device,
      chainDir: join(set.path, key),
      points: points.length,
      lastPoint: last ? { id: last.id, kind: last.kind, time: pointTimeText(last) } : null,
      allowed: ['full'],
      reason: null,
      changedBytes: null,
    };
    const { driver } = this.deps.backends;
    const info = await driver.cbtInfo(device);
    const identity = await deviceIdentity(this.deps.backends, device, info.deviceCapacity);
    const cbt = { generationId: info.generationId, changeNumber: info.changesNumber, blockSize: info.blockSize };
    try {
      const plan = await planPoint({ dir: chainPath, kind: 'incremental', device: identity, cbt });
      entry.allowed = ['full', 'incremental', 'differential'];
      const map = await readCbtMap(this.deps.backends, device, info.blockCount).catch(() => null);
      if (map && plan.parent) {
        let changed = 0;
        for (const n of map) if (n > plan.parent.cbt.changeNumber) changed++;
        entry.changedBytes = Math.min(changed * info.blockSize, info.deviceCapacity);
      }
    } catch (err) {
      if (!(err instanceof ChainBreakError)) throw err;
      entry.reason = set.shown(err.reason);
    }
    return entry;
  }

  startBackup(params: StartBackup): Promise<JobState> {
    return this.begin(params);
  }

  private async begin(params: StartBackup): Promise<JobState> {
    const { devices, warnings } = await this.snapshotDevices(params.snapshotId, params.devices);
    const set = await BackupDir.open(this.deps.files, params.dir, true);
    const kindWord = params.kind === 'full' ? 'Full' : params.kind === 'incremental' ? 'Incremental' : 'Differential';
    try {
      return this.deps.jobs.start({
        kind: 'backup',
        key: `backup:${params.dir}`,
        title: `${kindWord} backup of ${devices.join(', ')} to ${params.dir}`,
        warnings,
        run: async (ctx) => {
          const sources: DeviceSource[] = [];
          try {
            for (const d of devices) sources.push(await openDeviceSource(this.deps.backends, d, this.deps.source));
            // What the job reads: estimated per device up front, then what each backup says it reads.
            const totals: number[] = [];
            for (const s of sources) totals.push(await expectedReadBytes(set.chain(deviceKey(s.device)), s, params.kind, params.allowFull));
            const total = (): number => totals.reduce((n, t) => n + t, 0);
            let before = 0;
            const result: BackupJobResult = { kind: 'backup', points: [] };
            for (const [i, s] of sources.entries()) {
              const key = deviceKey(s.device);
              set.ensureChain(key);
              try {
                const r = await backupPoint({
                  dir: set.chain(key),
                  source: s.reader,
                  device: s.identity,
                  cbt: s.cbt,
                  cbtMap: s.cbtMap,
                  kind: params.kind,
                  allowFull: params.allowFull,
                  format: params.format,
                  compress: params.compress,
                  signal: ctx.signal,
                  onProgress: (p) => {
                    totals[i] = p.total;
                    ctx.progress(before + Math.min(p.done, p.total), total());
                  },
                });
                const m = r.manifest;
                result.points.push({
                  device: s.device,
                  chainDir: join(params.dir, key),
                  pointId: m.id,
                  pointKind: m.kind,
                  fullBecause: r.fullBecause,
                  bytesWritten: m.image.fileBytes,
                  changedBytes: changedBytes(m.sizes.changedBlocks, m.cbt.blockSize, m.device.size),
                });
              } catch (err) {
                throw set.rewrite(err);
              } finally {
                set.giveToOwner(key);
              }
              before += totals[i]!;
            }
            return result;
          } finally {
            for (const s of sources) await s.close().catch(() => undefined);
            set.close();
          }
        },
      });
    } catch (err) {
      set.close();
      throw err;
    }
  }

  /**
   * The device of a held (taken) snapshot that a point was taken from: same device
   * (path and size), same CBT generation and the change number of the take (a later
   * take of the device would have a larger one). Null when there is none.
   */
  private async heldDeviceOf(m: Manifest): Promise<{ device: string; snapshot: SnapshotId } | null> {
    for (const record of this.deps.book.all()) {
      if (!record.taken) continue;
      for (const device of record.devices) {
        const info = await this.deps.backends.driver.cbtInfo(device).catch(() => null);
        if (!info || info.generationId !== m.cbt.generationId || info.changesNumber !== m.cbt.changeNumber || info.deviceCapacity !== m.device.size) continue;
        const identity = await deviceIdentity(this.deps.backends, device, info.deviceCapacity);
        if (identity.path === m.device.path) return { device, snapshot: record.id };
      }
    }
    return null;
  }

  async startVerify(params: { dir: string; point?: string; compareWithSnapshot?: boolean }): Promise<JobState> {
    const set = await BackupDir.open(this.deps.files, params.dir, true);
    try {
      const chains = await chainsOf(set);
      let targets: { key: string | null; path: string; manifest: Manifest }[];
      if (params.point) targets = [await findSetPoint(set, params.point)];
      else targets = chains.flatMap((c) => c.points.map((manifest) => ({ key: c.key, path: c.path, manifest })));
      if (targets.length === 0) throw new BlksnapError('ENOENT', `there are no backup points in ${params.dir}`);
      // With compareWithSnapshot: the points whose snapshot is still held are also compared with its image.
      const held = new Map<string, { device: string; snapshot: SnapshotId }>();
      const warnings: string[] = [];
      if (params.compareWithSnapshot === true) {
        for (const t of targets) {
          const h = await this.heldDeviceOf(t.manifest);
          if (h) held.set(t.manifest.id, h);
          else if (params.point) warnings.push(`backup ${t.manifest.id} is not compared with a snapshot: the snapshot of ${t.manifest.device.path} it was taken from is no longer held`);
        }
        if (held.size === 0) {
          throw new BlksnapError('ENOENT', `no backup in ${params.dir} was taken from a snapshot that is still held: only a verify against the recorded hashes is possible`);
        }
        if (!params.point && held.size < targets.length) warnings.push(`${targets.length - held.size} of ${targets.length} backup points are not compared with a snapshot: theirs are no longer held`);
      }
      const total = targets.reduce((n, t) => n + t.manifest.device.size * (held.has(t.manifest.id) ? 2 : 1), 0);
      return this.deps.jobs.start({
        kind: 'verify',
        key: `backup:${params.dir}`,
        title: params.point ? `Verify backup ${params.point} in ${params.dir}` : `Verify ${targets.length} backup point(s) in ${params.dir}`,
        warnings,
        run: async (ctx) => {
          try {
            const result: VerifyJobResult = { kind: 'verify', ok: true, points: [] };
            let before = 0;
            for (const t of targets) {
              try {
                // a symlink or a foreign file name is never read as root; a missing file is verify's to report
                const unsafe = await checkPointFiles(set, t).then(
                  () => null,
                  (err: unknown) => (err instanceof BlksnapError && err.errno === 'ENOENT' ? null : set.shown(err instanceof Error ? err.message.replace(/^E[A-Z]+: /, '') : String(err))),
                );
                if (unsafe !== null) {
                  result.points.push({ pointId: t.manifest.id, ok: false, problem: unsafe });
                  result.ok = false;
                } else {
                  const r = await verifyPoint(t.path, t.manifest.id, { signal: ctx.signal, onProgress: (p) => ctx.progress(before + Math.min(p.done, t.manifest.device.size), total) });
                  let problem = r.problems[0] ?? null;
                  const h = held.get(t.manifest.id);
                  if (h) {
                    before += t.manifest.device.size;
                    const differs = await this.compareWithSnapshot(t.path, t.manifest, h, { signal: ctx.signal, onProgress: (p) => ctx.progress(before + Math.min(p.done, t.manifest.device.size), total) });
                    problem ??= differs;
                  }
                  result.points.push({ pointId: r.point, ok: problem === null, problem: problem === null ? null : set.shown(problem) });
                  if (problem !== null) result.ok = false;
                }
              } catch (err) {
                throw set.rewrite(err);
              } finally {
                if (t.key !== null) set.giveToOwner(t.key);
              }
              before += t.manifest.device.size;
            }
            return result;
          } finally {
            set.close();
          }
        },
      });
    } catch (err) {
      set.close();
      throw err;
    }
  }

  /** Reads the point and the snapshot image it came from; the differences in words, or null when equal. */
  private async compareWithSnapshot(dir: string, m: Manifest, held: { device: string; snapshot: SnapshotId }, opts: JobOptions): Promise<string | null> {
    const source = await openDeviceSource(this.deps.backends, held.device, this.deps.source);
    let image: Awaited<ReturnType<typeof openImage>> | null = null;
    try {
      image = await openImage(join(dir, m.image.file), m.image.format);
      const differs = describeDifferences(await compareImages(image, source.reader, opts));
      return differs === null ? null : `the backup differs from the image of snapshot ${held.snapshot} of ${m.device.path} it was taken from at ${differs}`;
    } finally {
      await image?.close();
      await source.close();
    }
  }

  async catalog(dir: string): Promise<Catalog> {
    const set = await BackupDir.open(this.deps.files, dir, false);
    try {
      const catalog: Catalog = { dir, spaceUsed: await spaceUsed(set.base), chains: [] };
      for (const chain of await chainsOf(set)) {
        const last = chain.points[chain.points.length - 1]!;
        const points = [];
        for (const p of chain.points) {
          const record = await readVerifyRecord(chain.path, p.id);
          points.push({
            id: p.id,
            kind: p.kind,
            time: p.times.startedAt,
            parent: p.parent,
            fileSize: p.image.fileBytes,
            changedBytes: changedBytes(p.sizes.changedBlocks, p.cbt.blockSize, p.device.size),
            verify: record ? (record.ok ? ('ok' as const) : ('failed' as const)) : ('never' as const),
            verifiedAt: record?.at ?? null,
            file: chain.key === null ? join(dir, p.image.file) : join(dir, chain.key, p.image.file),
          });
        }
        catalog.chains.push({
          chainDir: chain.key === null ? dir : join(dir, chain.key),
          device: { path: last.device.path, size: last.device.size, model: last.device.model ?? null, serial: last.device.serial ?? null },
          points,
        });
      }
      return catalog;
    } finally {
      set.close();
    }
  }
}

/**
 * The bytes a backup of `s` will read, before it starts: for an incremental or
 * differential that continues its chain, the tracking blocks changed since its parent;
 * otherwise the whole device. backupPoint's own progress replaces it once it runs.
 */
async function expectedReadBytes(dir: string, s: DeviceSource, kind: PointKindName, allowFull: boolean | undefined): Promise<number> {
  const size = s.identity.size;
  if (kind === 'full') return size;
  const plan = await planPoint({ dir, kind, device: s.identity, cbt: s.cbt, allowFull }).catch(() => null);
  const parent = plan?.parent;
  if (!parent) return size;
  const blocks = Math.ceil(size / s.cbt.blockSize);
  let changed = 0;
  for (let b = 0; b < blocks; b++) if ((s.cbtMap[b] ?? 0) > parent.cbt.changeNumber) changed++;
  return Math.min(changed * s.cbt.blockSize, size);
}

/** Bytes allocated on disk under `path` (two levels: the set folder and its chain folders). */
async function spaceUsed(path: string, depth = 0): Promise<number> {
  let sum = 0;
  for (const entry of await readdir(path, { withFileTypes: true }).catch(() => [])) {
    const full = join(path, entry.name);
    if (entry.isFile()) sum += await stat(full).then((s) => s.blocks * 512, () => 0);
    else if (entry.isDirectory() && depth < 1) sum += await spaceUsed(full, depth + 1);
  }
  return sum;
}
