/**
 * The difference-storage files the helper created for snapshots of the embedded
 * engine, persisted in its state directory. Those snapshots live in the helper's
 * process, so a helper that was killed (SIGKILL, OOM, power loss) leaves their files
 * behind; the next start removes them. A file is removed only while it is still the
 * very file the helper created (same device and inode, a regular file, never through
 * a symlink at the last component), so a path that now names something else is left
 * alone. With the kernel driver, whose snapshots outlive the helper, the records
 * instead let a new helper remove a snapshot's file when it is destroyed later.
 */
import { constants as fsConstants, existsSync } from 'node:fs';
import { lstat, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errnoOf } from './fs-errors.js';

/**
 * A storage file: its device and inode, and (recorded since) those of the directory
 * it was created in. The user owns that directory and may rename it or put a symlink
 * in its place at any moment, so the file is looked at and removed only through the
 * directory opened and checked first (/proc/self/fd/N/name), never by path alone.
 */
export interface StorageIdentity {
  dev: number;
  ino: number;
  dirDev?: number;
  dirIno?: number;
}

export interface StorageFileRecord extends StorageIdentity {
  path: string;
  snapshotId: string;
}

function isRecord(value: unknown): value is StorageFileRecord {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  const optionalNumber = (v: unknown): boolean => v === undefined || typeof v === 'number';
  return (
    typeof r.path === 'string' &&
    r.path.startsWith('/') &&
    typeof r.dev === 'number' &&
    typeof r.ino === 'number' &&
    optionalNumber(r.dirDev) &&
    optionalNumber(r.dirIno) &&
    typeof r.snapshotId === 'string'
  );
}

/**
 * Runs `fn` on the entry `basename(path)` of the directory `dirname(path)` as opened
 * now (pinned: swapping the directory afterwards does not redirect `fn`); null when
 * that directory is not `dir`.
 */
async function inPinnedDir<T>(path: string, dir: { dev: number; ino: number } | null, fn: (entry: string) => Promise<T>): Promise<T | null> {
  const handle = await open(dirname(path), fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    const st = await handle.stat();
    if (dir && (st.dev !== dir.dev || st.ino !== dir.ino)) return null;
    const entry = existsSync('/proc/self/fd') ? `/proc/self/fd/${handle.fd}/${basename(path)}` : path;
    return await fn(entry);
  } finally {
    await handle.close();
  }
}

function dirOf(identity: StorageIdentity): { dev: number; ino: number } | null {
  return identity.dirDev !== undefined && identity.dirIno !== undefined ? { dev: identity.dirDev, ino: identity.dirIno } : null;
}

/**
 * The identity of the storage file the driver just created at `path` in the checked
 * directory `dir`; null when the directory on the path is no longer that one or the
 * entry is not a regular file (then the helper never removes anything there).
 */
export async function storageFileIdentity(path: string, dir: { dev: number; ino: number }): Promise<StorageIdentity | null> {
  try {
    return await inPinnedDir(path, dir, async (entry) => {
      const st = await lstat(entry);
      if (!st.isFile()) return null;
      return { dev: st.dev, ino: st.ino, dirDev: dir.dev, dirIno: dir.ino };
    });
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

/** Removes `path` if it is still the regular file `dev`/`ino` (in its recorded directory); true when removed. */
export async function removeIfSameFile(path: string, identity: StorageIdentity | null): Promise<boolean> {
  try {
    const removed = await inPinnedDir(path, identity ? dirOf(identity) : null, async (entry) => {
      const st = await lstat(entry);
      if (!st.isFile()) return false;
      if (identity && (st.dev !== identity.dev || st.ino !== identity.ino)) return false;
      await unlink(entry);
      return true;
    });
    return removed === true;
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw err;
  }
}

export class StorageLedger {
  private readonly file: string;
  private records: StorageFileRecord[] = [];
  private chain: Promise<void> = Promise.resolve();

  constructor(stateDir: string) {
    this.file = join(stateDir, 'storage-files.json');
  }

  /** The records a previous helper left (an unreadable ledger counts as empty). */
  private async read(): Promise<StorageFileRecord[]> {
    try {
      const parsed: unknown = JSON.parse(await readFile(this.file, 'utf8'));
      return Array.isArray(parsed) ? parsed.filter(isRecord) : [];
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || err instanceof SyntaxError) return [];
      throw err;
    }
  }

  private save(): Promise<void> {
    const next = this.chain.then(async () => {
      const tmp = `${this.file}.tmp-${process.pid}`;
      await writeFile(tmp, JSON.stringify(this.records, null, 2) + '\n', { mode: 0o600 });
      await rename(tmp, this.file);
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** At start: removes the files a killed helper left behind; returns the paths removed. */
  async removeLeftovers(log: (message: string) => void): Promise<string[]> {
    const removed: string[] = [];
    for (const rec of await this.read()) {
      try {
        if (await removeIfSameFile(rec.path, rec)) {
          removed.push(rec.path);
          log(`removed ${rec.path}, the difference storage of snapshot ${rec.snapshotId} left by a helper that did not shut down cleanly`);
        }
      } catch (err) {
        log(`cannot remove the leftover difference storage ${rec.path}: ${(err as Error).message}`);
      }
    }
    this.records = [];
    await this.save();
    return removed;
  }

  /**
   * Kernel driver, at start: its snapshots outlive the helper, so the records of
   * snapshots that still exist are kept (returned, for the helper to remove their
   * files when they are destroyed); the files of snapshots destroyed while no
   * helper ran (e.g. with the blksnap tool) are removed.
   */
  async reconcile(liveIds: Set<string>, log: (message: string) => void): Promise<StorageFileRecord[]> {
    const kept: StorageFileRecord[] = [];
    for (const rec of await this.read()) {
      if (liveIds.has(rec.snapshotId)) {
        kept.push(rec);
        continue;
      }
      try {
        if (await removeIfSameFile(rec.path, rec)) log(`removed ${rec.path}, the difference storage of snapshot ${rec.snapshotId}, destroyed while no helper ran`);
      } catch (err) {
        log(`cannot remove the difference storage ${rec.path}: ${(err as Error).message}`);
      }
    }
    this.records = kept;
    await this.save();
    return kept;
  }

  /**
   * Records a storage file the helper just created (in the checked directory `dir`,
   * when given: see storageFileIdentity; throws when the file is not there).
   */
  async add(path: string, snapshotId: string, dir?: { dev: number; ino: number }): Promise<StorageIdentity> {
    let identity: StorageIdentity | null;
    if (dir) {
      identity = await storageFileIdentity(path, dir);
    } else {
      const st = await lstat(path);
      identity = st.isFile() ? { dev: st.dev, ino: st.ino } : null;
    }
    if (!identity) throw new Error(`${path} is no longer the file created in the checked directory`);
    this.records.push({ path, ...identity, snapshotId });
    await this.save();
    return identity;
  }

  /** Forgets a storage file (removed with its snapshot). */
  async forget(path: string): Promise<void> {
    const before = this.records.length;
    this.records = this.records.filter((r) => r.path !== path);
    if (this.records.length !== before) await this.save();
  }

  get paths(): string[] {
    return this.records.map((r) => r.path);
  }
}
