/**
 * Every file the helper creates on a client's behalf (difference storage, lab-disk
 * images), recorded in its state directory *before* the file gets its name
 * (caller-fs.ts creates it unnamed first), so a helper killed at any moment leaves
 * nothing unrecorded. The next start removes what a killed helper left: storage
 * files of embedded-engine snapshots (they died with it), images that never made it
 * into the image registry, and the state directory's own temporary files.
 *
 * A file is removed only while it is still the very file the helper created (same
 * device and inode, a regular file, in the directory it was created in, reached
 * without symlinks) and with the rights of the user it was created for.
 * With the kernel driver, whose snapshots outlive the helper, the records instead
 * let a new helper remove a snapshot's file when it is destroyed later.
 */
import { constants as fsConstants } from 'node:fs';
import { open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CallerFs } from './caller-fs.js';
import type { FileIdentity, PendingFile } from './caller-fs.js';
import { errnoOf } from './fs-errors.js';
import { ownerOf } from './owner.js';

/** A storage file: its device and inode, and those of the directory it was created in. */
export interface StorageIdentity {
  dev: number;
  ino: number;
  dirDev?: number;
  dirIno?: number;
  /** The user it was created for (default: the helper's owner). */
  uid?: number;
  /** While the helper runs: the directory it was created in, open (never persisted). */
  dirFd?: number;
}

export interface CreatedFileRecord {
  path: string;
  /** `storage-grow`: a file storageGrow added to a held snapshot's storage (kernel driver, VAL-7.0). */
  kind: 'storage' | 'storage-grow' | 'image';
  /** The snapshot a storage file belongs to, or the name an image is being registered under. */
  owner: string;
  /** The user it was created for (removal uses that user's rights). */
  uid: number;
  dirDev: number;
  dirIno: number;
  /** Absent only while a file system without O_TMPFILE creates the file. */
  dev?: number;
  ino?: number;
}

/** Compatibility with records written before (storage files, no kind, no uid). */
interface LegacyRecord {
  path: string;
  snapshotId: string;
  dev: number;
  ino: number;
  dirDev?: number;
  dirIno?: number;
}

const optionalNumber = (v: unknown): boolean => v === undefined || typeof v === 'number';

function parseRecord(value: unknown, fallbackUid: number): CreatedFileRecord | null {
  if (typeof value !== 'object' || value === null) return null;
  const r = value as Record<string, unknown>;
  if (typeof r.path !== 'string' || !r.path.startsWith('/')) return null;
  if (!optionalNumber(r.dev) || !optionalNumber(r.ino) || !optionalNumber(r.dirDev) || !optionalNumber(r.dirIno)) return null;
  if ((r.kind === 'storage' || r.kind === 'storage-grow' || r.kind === 'image') && typeof r.owner === 'string' && typeof r.uid === 'number') {
    if (typeof r.dirDev !== 'number' || typeof r.dirIno !== 'number') return null;
    return value as CreatedFileRecord;
  }
  const legacy = value as Partial<LegacyRecord>;
  if (typeof legacy.snapshotId === 'string' && typeof legacy.dev === 'number' && typeof legacy.ino === 'number') {
    if (legacy.dirDev === undefined || legacy.dirIno === undefined) return null; // never removed without its directory
    return { path: r.path, kind: 'storage', owner: legacy.snapshotId, uid: fallbackUid, dirDev: legacy.dirDev, dirIno: legacy.dirIno, dev: legacy.dev, ino: legacy.ino };
  }
  return null;
}

export function identityOf(rec: CreatedFileRecord): StorageIdentity | null {
  return rec.dev !== undefined && rec.ino !== undefined ? { dev: rec.dev, ino: rec.ino, dirDev: rec.dirDev, dirIno: rec.dirIno } : null;
}

/** Temporary files of the helper's own state writes (name.tmp-PID, name.PID.HEX.tmp). */
const STATE_TEMP_RE = /(\.tmp-\d+|\.\d+\.[0-9a-f]+\.tmp)$/;

export class StorageLedger {
  private readonly file: string;
  private records: CreatedFileRecord[] = [];
  private chain: Promise<void> = Promise.resolve();

  /**
   * `fsFor(uid)` gives the file access with that user's rights (default: from
   * /etc/passwd and /etc/group); `defaultUid` is assumed for records of older helpers.
   */
  constructor(
    private readonly stateDir: string,
    private readonly defaultUid = 0,
    private readonly fsFor: (uid: number) => CallerFs = (uid) => new CallerFs(ownerOf(uid)),
  ) {
    this.file = join(stateDir, 'storage-files.json');
  }

  /** The records a previous helper left (an unreadable ledger counts as empty). */
  private async read(): Promise<CreatedFileRecord[]> {
    try {
      const parsed: unknown = JSON.parse(await readFile(this.file, 'utf8'));
      if (!Array.isArray(parsed)) return [];
      return parsed.map((v) => parseRecord(v, this.defaultUid)).filter((r): r is CreatedFileRecord => r !== null);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || err instanceof SyntaxError) return [];
      throw err;
    }
  }

  /** Writes the ledger durably (temp file, fsync, rename) before returning. */
  private save(): Promise<void> {
    const snapshot = JSON.stringify(this.records, null, 2) + '\n';
    const next = this.chain.then(async () => {
      const tmp = `${this.file}.tmp-${process.pid}`;
      const handle = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC, 0o600);
      try {
        await handle.writeFile(snapshot);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, this.file);
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Removes the file of `rec` if it is still the one created; true when removed. */
  private async removeRecorded(rec: CreatedFileRecord, log: (message: string) => void): Promise<boolean> {
    const fs = this.fsFor(rec.uid);
    const dir = { dev: rec.dirDev, ino: rec.dirIno };
    const identity = identityOf(rec);
    if (identity) return fs.removeIfSame(rec.path, identity, dir);
    // created on a file system without O_TMPFILE and killed before its inode was recorded:
    // an empty regular file of that user there is what the helper left; anything else is reported
    const found = fs.statIfRegular(rec.path, dir);
    if (found && found.size === 0 && found.uid === rec.uid) return fs.removeIfSame(rec.path, found, dir);
    if (found) log(`left ${rec.path} in place: the helper was killed while creating it, and it now holds data (remove it yourself if it is not yours)`);
    return false;
  }

  /**
   * At start (embedded engine): removes the files a killed helper left behind, and
   * the state directory's temporary files. Images in `registered` are kept (and
   * forgotten here: the image registry holds them). Returns the paths removed.
   */
  async removeLeftovers(log: (message: string) => void, registered: (rec: CreatedFileRecord) => boolean = () => false): Promise<string[]> {
    const removed: string[] = [];
    for (const rec of await this.read()) {
      if (rec.kind === 'image' && registered(rec)) continue;
      try {
        if (await this.removeRecorded(rec, log)) {
          removed.push(rec.path);
          const what = rec.kind !== 'image' ? `the difference storage of snapshot ${rec.owner}` : `the unfinished image ${rec.owner}`;
          log(`removed ${rec.path}, ${what} left by a helper that did not shut down cleanly`);
        }
      } catch (err) {
        log(`cannot remove the leftover ${rec.path}: ${(err as Error).message}`);
      }
    }
    removed.push(...(await this.removeStateTemporaries(log)));
    this.records = [];
    await this.save();
    return removed;
  }

  /** Removes temporary state files (a write interrupted between create and rename). */
  private async removeStateTemporaries(log: (message: string) => void): Promise<string[]> {
    const removed: string[] = [];
    let names: string[];
    try {
      names = await readdir(this.stateDir);
    } catch {
      return removed;
    }
    for (const name of names) {
      if (!STATE_TEMP_RE.test(name)) continue;
      const path = join(this.stateDir, name);
      try {
        await unlink(path);
        removed.push(path);
        log(`removed ${path}, a temporary state file left by a helper that did not shut down cleanly`);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') log(`cannot remove ${path}: ${(err as Error).message}`);
      }
    }
    return removed;
  }

  /**
   * Kernel driver, at start: its snapshots outlive the helper, so the records of
   * snapshots that still exist are kept (returned, for the helper to remove their
   * files when they are destroyed); the files of snapshots destroyed while no
   * helper ran (e.g. with the blksnap tool) are removed.
   */
  async reconcile(liveIds: Set<string>, log: (message: string) => void): Promise<CreatedFileRecord[]> {
    const kept: CreatedFileRecord[] = [];
    for (const rec of await this.read()) {
      if (rec.kind !== 'image' && liveIds.has(rec.owner)) {
        kept.push(rec);
        continue;
      }
      try {
        if (await this.removeRecorded(rec, log)) log(`removed ${rec.path}, the difference storage of snapshot ${rec.owner}, destroyed while no helper ran`);
      } catch (err) {
        log(`cannot remove ${rec.path}: ${(err as Error).message}`);
      }
    }
    await this.removeStateTemporaries(log);
    this.records = kept;
    await this.save();
    return kept;
  }

  /** Records a file about to be named (caller-fs createFile's beforeLink), durably. */
  async recordPending(pending: PendingFile, kind: CreatedFileRecord['kind'], owner: string, uid: number): Promise<void> {
    const rec: CreatedFileRecord = { path: pending.path, kind, owner, uid, dirDev: pending.dirDev, dirIno: pending.dirIno };
    if (pending.identity) Object.assign(rec, pending.identity);
    this.records = this.records.filter((r) => r.path !== pending.path);
    this.records.push(rec);
    await this.save();
  }

  /** The inode of a file recorded without one (no O_TMPFILE), once it exists. */
  async settle(path: string, identity: FileIdentity): Promise<void> {
    const rec = this.records.find((r) => r.path === path);
    if (!rec || (rec.dev === identity.dev && rec.ino === identity.ino)) return;
    rec.dev = identity.dev;
    rec.ino = identity.ino;
    await this.save();
  }

  /** Re-labels a record (a storage file recorded before its snapshot had an id). */
  async relabel(path: string, owner: string): Promise<void> {
    const rec = this.records.find((r) => r.path === path);
    if (!rec || rec.owner === owner) return;
    rec.owner = owner;
    await this.save();
  }

  /** Forgets a file (removed with its snapshot, or now held by the image registry). */
  async forget(path: string): Promise<void> {
    const before = this.records.length;
    this.records = this.records.filter((r) => r.path !== path);
    if (this.records.length !== before) await this.save();
  }

  get paths(): string[] {
    return this.records.map((r) => r.path);
  }
}
