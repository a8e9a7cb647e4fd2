/**
 * Files of a chain folder and how they are written safely: everything under a
 * ".partial-" name first, fsynced, then renamed, the manifest last, then the folder
 * fsynced. A lock file keeps two jobs from writing the same folder at once; a lock
 * left by a killed process (its pid is gone) is taken over.
 */
import { constants } from 'node:fs';
import { open, readdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlksnapError } from '../abi/errno.js';

export const PARTIAL_PREFIX = '.partial-';
export const LOCK_FILE = '.lock';
export const MANIFEST_SUFFIX = '.json';
export const VERIFY_SUFFIX = '.verify.json';
const IMAGE_SUFFIXES = ['.qcow2', '.raw'];
/** Point ids: sequence, start time (UTC) and kind, e.g. "0002-20261201-140200-incremental". */
export const POINT_ID_RE = /^\d{4,}-\d{8}-\d{6}-(full|incremental|differential)$/;

export const partialName = (name: string): string => `${PARTIAL_PREFIX}${name}`;

export async function fsyncPath(path: string, directory = false): Promise<void> {
  const fh = await open(path, directory ? constants.O_RDONLY | constants.O_DIRECTORY : constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes `.partial-<name>` in dir and fsyncs it; returns its path. The caller renames
 * it to `name` and then fsyncs the folder (writeFileAtomic does both).
 */
export async function writePartialFile(dir: string, name: string, data: string | Buffer): Promise<string> {
  const tmp = join(dir, partialName(name));
  // never through whatever is at the partial name (the folder may be a user's: a
  // symlink planted there must not redirect the helper's write): remove it, create anew
  await unlink(tmp).catch(() => undefined);
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}

/** Writes `name` in dir durably: a partial file, fsync, rename, fsync of the folder. */
export async function writeFileAtomic(dir: string, name: string, data: string | Buffer): Promise<void> {
  const tmp = await writePartialFile(dir, name, data);
  await rename(tmp, join(dir, name));
  await fsyncPath(dir, true);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The lock file's text, never through a symlink put in its place. */
async function readLockPid(path: string): Promise<string> {
  try {
    const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      return (await fh.readFile('utf8')).slice(0, 32);
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}

/** Takes the folder's lock; returns its release. EBUSY while a live process holds it. */
export async function lockFolder(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: 'wx' });
      return () => unlink(path).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readLockPid(path)).trim());
      // our own pid is a live job too (two jobs of one helper process)
      if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) {
        throw new BlksnapError('EBUSY', `another backup job (process ${pid}) is working in ${dir}`);
      }
      await unlink(path).catch(() => undefined); // left by a process that is gone
    }
  }
  throw new BlksnapError('EBUSY', `the lock of ${dir} cannot be taken`);
}

/**
 * Removes what an interrupted job left: ".partial-" files, and image files of points
 * whose manifest was never written. Returns the names removed.
 */
export async function removeLeftovers(dir: string): Promise<string[]> {
  const names = await readdir(dir);
  const manifests = new Set(names.filter((n) => n.endsWith(MANIFEST_SUFFIX) && !n.endsWith(VERIFY_SUFFIX)).map((n) => n.slice(0, -MANIFEST_SUFFIX.length)));
  const removed: string[] = [];
  for (const name of names) {
    const suffix = IMAGE_SUFFIXES.find((s) => name.endsWith(s));
    const id = suffix === undefined ? '' : name.slice(0, -suffix.length);
    const orphan = POINT_ID_RE.test(id) && !manifests.has(id);
    if (name.startsWith(PARTIAL_PREFIX) || orphan) {
      await rm(join(dir, name), { force: true });
      removed.push(name);
    }
  }
  if (removed.length > 0) await fsyncPath(dir, true);
  return removed;
}
