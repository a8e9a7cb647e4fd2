/**
 * Restore of a backup point by the helper, to a target reached with the caller's
 * rights: a new image file (created unnamed-then-named by CallerFs as
 * ".partial-NAME" and given its name only when its content has the SHA-256 recorded
 * at take), an existing regular file (opened with the caller's rights), a block
 * device (opened exclusively: a mounted or otherwise used device is refused), or an
 * embedded-engine device (written through the engine, so its tracker sees it).
 * Refused unless forced: the device the backup was taken from. Always refused: a
 * device in a snapshot, a target too small.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { lstat, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BlksnapError } from '../abi/errno.js';
import type { BlockDevice } from '../core/block-device.js';
import { fdatasync, ftruncate, writeFull } from '../core/file-io.js';
import type { openImage } from '../backup/index.js';
import type { Manifest } from '../backup/index.js';
import { createSha256 } from '../backup/sha256-process.js';
import { blockProblems, knownSha256, scanImage } from '../backup/verify.js';
import { isZeroRange } from '../backup/image-writer.js';
import { formatSize } from '../devices/size.js';
import { parseMountinfo } from '../devices/sysfs-block.js';
import type { JobState, RestoreJobResult } from '../protocol/backup-schemas.js';
import type { HelperBackends } from './backends.js';
import { BackupDir } from './backup-dir.js';
import { findSetPoint, openPointImage } from './backup-jobs.js';
import type { CallerFs } from './caller-fs.js';
import type { JobRunner } from './jobs.js';
import type { SnapshotBook } from './snapshot-book.js';
import type { StorageLedger } from './storage-ledger.js';

const PARTIAL = '.partial-';

export interface RestoreDeps {
  backends: HelperBackends;
  book: SnapshotBook;
  files: CallerFs;
  jobs: JobRunner;
  /** Where a new target is recorded before it is named (the next start removes what a killed restore left). */
  ledger?: StorageLedger | null;
}

/** Where restored bytes go. */
interface RestoreTarget {
  /** Zero chunks must be written (an existing target holds old data). */
  writeZeros: boolean;
  write(offset: number, data: Buffer): Promise<void>;
  /** Durable; a new file gets its name. */
  commit(): Promise<void>;
  /** After a failure: a new file is removed; the descriptor closed. */
  abandon(): void;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

function majMin(rdev: number): string {
  // glibc's encoding of dev_t
  const major = ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
  const minor = (rdev & 0xff) | ((rdev >>> 12) & ~0xff);
  return `${major}:${minor >>> 0}`;
}

/** Mount points of the block device `rdev` and of its partitions. */
export function mountPointsOf(rdev: number): string[] {
  const mm = majMin(rdev);
  const mounts = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  const out = [...(mounts.get(mm) ?? [])];
  for (const [other, points] of mounts) if (other !== mm && isPartitionOf(other, mm)) out.push(...points);
  return out;
}

/** Whether the block device `partMm` is a partition of `diskMm` (sysfs: the partition's parent folder). */
function isPartitionOf(partMm: string, diskMm: string): boolean {
  try {
    if (readFileSync(`/sys/dev/block/${partMm}/partition`, 'utf8').trim() === '') return false;
    return readFileSync(`/sys/dev/block/${partMm}/../dev`, 'utf8').trim() === diskMm;
  } catch {
    return false;
  }
}

function blockDeviceSize(rdev: number): number {
  return Number(readFileSync(`/sys/dev/block/${majMin(rdev)}/size`, 'utf8').trim()) * 512;
}

export class BackupRestore {
  constructor(private readonly deps: RestoreDeps) {}

  async start(params: { dir: string; point: string; target: string; force?: boolean }): Promise<JobState> {
    const set = await BackupDir.open(this.deps.files, params.dir, false);
    let image: Awaited<ReturnType<typeof openImage>> | null = null;
    let target: RestoreTarget | null = null;
    try {
      const found = await findSetPoint(set, params.point);
      const manifest = found.manifest;
      image = await openPointImage(set, found);
      set.close();
      target = await this.openTarget(params.target, manifest, params.force === true);
      const opened = image;
      const out = target;
      return this.deps.jobs.start({
        kind: 'restore',
        key: `restore:${params.target}`,
        title: `Restore ${manifest.id} of ${manifest.device.path} to ${params.target}`,
        run: async (ctx) => {
          const sha = createSha256();
          let ok = false;
          try {
            const expected = await knownSha256(found.path, manifest);
            let problems: string[] = [];
            const bytes = await scanImage(opened, manifest.cbt.blockSize, 'restore', { signal: ctx.signal, onProgress: (p) => ctx.progress(p.done, p.total) }, async (offset, data) => {
              if (expected === null && problems.length === 0) problems = blockProblems(manifest, offset, data);
              if (out.writeZeros || !isZeroRange(data, 0, data.length)) await out.write(offset, data);
              await sha.update(data, true);
            });
            const digest = await sha.digest();
            if (expected !== null && digest !== expected) problems.push(`its SHA-256 is ${digest}, the image at take had ${expected}`);
            if (problems.length > 0) throw new BlksnapError('EIO', `the restored data does not match the backup point ${manifest.id}: ${problems[0]}`);
            await out.commit();
            ok = true;
            const result: RestoreJobResult = { kind: 'restore', target: params.target, bytes, sha256: digest, matchesManifest: true };
            return result;
          } finally {
            if (!ok) out.abandon();
            await sha.close();
            await opened.close();
          }
        },
      });
    } catch (err) {
      set.close();
      target?.abandon();
      await image?.close();
      throw set.rewrite(err);
    }
  }

  private refuseInSnapshot(target: string, isSame: (path: string) => Promise<boolean>): Promise<void> {
    return (async () => {
      const holder = this.deps.book.holderOf(target);
      if (holder) throw new BlksnapError('EBUSY', `${target} is in snapshot ${holder.id}`);
      for (const d of this.deps.backends.engine?.listDevices() ?? []) {
        if (d.snapshotId && (d.path === target || (await isSame(d.path)))) throw new BlksnapError('EBUSY', `${target} is in snapshot ${d.snapshotId}`);
      }
    })();
  }

  private async openTarget(target: string, manifest: Manifest, force: boolean): Promise<RestoreTarget> {
    const need = manifest.device.size;
    const targetStat = await lstat(target).catch(() => null);
    const sameAs = async (path: string): Promise<boolean> => {
      if (!targetStat) return false;
      const other = await stat(path).catch(() => null);
      if (!other) return false;
      if (targetStat.isBlockDevice() || other.isBlockDevice()) return other.isBlockDevice() && targetStat.isBlockDevice() && other.rdev === targetStat.rdev;
      return other.dev === targetStat.dev && other.ino === targetStat.ino;
    };
    await this.refuseInSnapshot(target, sameAs);
    if (!force && (manifest.device.path === target || (await sameAs(manifest.device.path)))) {
      throw new BlksnapError('EPERM', `${target} is the device this backup was taken from (${manifest.device.path}); pass --force to restore onto it`);
    }
    const tooSmall = (have: number): BlksnapError => new BlksnapError('ENOSPC', `${target} is too small: ${formatSize(have)} for a ${formatSize(need)} image`);

    // an embedded-engine device: through the engine (its tracker sees the writes)
    const engineDevices = this.deps.backends.engine?.listDevices() ?? [];
    let match = engineDevices.find((d) => d.path === target);
    for (const d of engineDevices) if (!match && (await sameAs(d.path))) match = d;
    if (match) {
      // the caller must be able to write the file behind it
      closeQuietly(this.deps.files.openExisting(target, 'restore target', { write: true }).fd);
      if (match.capacity < need) throw tooSmall(match.capacity);
      return this.engineTarget(this.deps.backends.engine!.device(match.name));
    }
    if (!targetStat) return this.newFile(target, need);

    const opened = this.deps.files.openExisting(target, 'restore target', { write: true });
    let fd = opened.fd;
    try {
      if (opened.isBlockDevice) {
        const mounted = mountPointsOf(opened.rdev);
        if (mounted.length > 0) throw new BlksnapError('EBUSY', `${target} is mounted at ${mounted.join(', ')}`);
        // exclusively: a device mounted or held by something else is refused by the kernel
        try {
          fd = openSync(`/proc/self/fd/${opened.fd}`, constants.O_RDWR | constants.O_EXCL);
        } catch (err) {
          if ((err as { code?: string }).code === 'EBUSY') throw new BlksnapError('EBUSY', `${target} is in use (mounted, or held by another device)`);
          throw err;
        } finally {
          closeQuietly(opened.fd);
        }
        const size = blockDeviceSize(fstatSync(fd).rdev);
        if (size < need) throw tooSmall(size);
      } else if (opened.size < need) {
        throw tooSmall(opened.size);
      }
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
    const theFd = fd;
    return {
      writeZeros: true,
      write: (offset, data) => writeFull(theFd, data, 0, data.length, offset),
      commit: async () => {
        await fdatasync(theFd);
        closeQuietly(theFd);
      },
      abandon: () => closeQuietly(theFd),
    };
  }

  private engineTarget(device: BlockDevice): RestoreTarget {
    return {
      writeZeros: true,
      write: (offset, data) => device.write(offset, data),
      commit: () => device.flush(),
      abandon: () => undefined,
    };
  }

  /** A new sparse file, written as ".partial-NAME" and named NAME when complete. */
  private async newFile(target: string, size: number): Promise<RestoreTarget> {
    const files = this.deps.files;
    const name = basename(target);
    const partialPath = join(dirname(target), `${PARTIAL}${name}`);
    // what a killed restore left: a partial file of the user's, removed
    const stale = files.statIfRegular(partialPath, null);
    if (stale && stale.uid === files.uid) files.removeIfSame(partialPath, stale, null);
    const ledger = this.deps.ledger ?? null;
    const created = await files.createFile(partialPath, 'restore target', (pending) => ledger?.recordPending(pending, 'image', `restore to ${target}`, files.uid) ?? Promise.resolve(), { keepDir: true });
    const dirFd = created.dirFd!;
    let named = false;
    const forget = (): void => {
      void ledger?.forget(partialPath).catch(() => undefined);
    };
    try {
      await ledger?.settle(partialPath, created);
      await ftruncate(created.fd, size);
    } catch (err) {
      files.removeIn(dirFd, `${PARTIAL}${name}`, created);
      forget();
      closeQuietly(created.fd);
      closeQuietly(dirFd);
      throw err;
    }
    return {
      writeZeros: false,
      write: (offset, data) => writeFull(created.fd, data, 0, data.length, offset),
      commit: async () => {
        await fdatasync(created.fd);
        files.linkIn(created.fd, dirFd, name, 'restore target');
        named = true;
        files.removeIn(dirFd, `${PARTIAL}${name}`, created);
        await ledger?.forget(partialPath);
        const dfd = openSync(`/proc/self/fd/${dirFd}`, constants.O_RDONLY | constants.O_DIRECTORY);
        try {
          await fdatasync(dfd).catch(() => undefined);
        } finally {
          closeQuietly(dfd);
        }
        closeQuietly(created.fd);
        closeQuietly(dirFd);
      },
      abandon: () => {
        if (!named) files.removeIn(dirFd, `${PARTIAL}${name}`, created);
        forget();
        closeQuietly(created.fd);
        closeQuietly(dirFd);
      },
    };
  }
}
