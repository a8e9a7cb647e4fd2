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
import { lstat, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoOf } from './fs-errors.js';

export interface StorageFileRecord {
  path: string;
  dev: number;
  ino: number;
  snapshotId: string;
}

function isRecord(value: unknown): value is StorageFileRecord {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  return typeof r.path === 'string' && r.path.startsWith('/') && typeof r.dev === 'number' && typeof r.ino === 'number' && typeof r.snapshotId === 'string';
}

/** Removes `path` if it is still the regular file `dev`/`ino`; true when removed. */
export async function removeIfSameFile(path: string, identity: { dev: number; ino: number } | null): Promise<boolean> {
  try {
    const st = await lstat(path);
    if (!st.isFile()) return false;
    if (identity && (st.dev !== identity.dev || st.ino !== identity.ino)) return false;
    await unlink(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
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

  /** Records a storage file the helper just created. */
  async add(path: string, snapshotId: string): Promise<{ dev: number; ino: number }> {
    const st = await lstat(path);
    this.records.push({ path, dev: st.dev, ino: st.ino, snapshotId });
    await this.save();
    return { dev: st.dev, ino: st.ino };
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
