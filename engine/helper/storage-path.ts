/**
 * Checks a difference-storage path before the driver creates the file (the driver
 * opens it O_CREAT|O_EXCL|O_NOFOLLOW, 0600, so a file that appears in between still
 * fails with EEXIST/ELOOP). The helper runs as root: it never follows a symlink at
 * the final component, never reuses or overwrites a file, and refuses directories
 * another user could swap things in.
 */
import { lstat, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { BlksnapError } from '../abi/errno.js';
import { errnoOf } from './fs-errors.js';

const S_IWOTH = 0o002;
const S_ISVTX = 0o1000;

/** Resolves and checks `path`; returns the absolute path to pass to the driver. */
export async function checkDiffStoragePath(path: string, ownerUid: number): Promise<string> {
  return (await checkDiffStorage(path, ownerUid)).path;
}

/**
 * checkDiffStoragePath, plus which directory was checked (device and inode): the
 * file the driver then creates is recorded, and later removed, only inside that very
 * directory (storage-ledger.ts), even if a directory on the path is swapped meanwhile.
 */
export async function checkDiffStorage(path: string, ownerUid: number): Promise<{ path: string; dir: { dev: number; ino: number } }> {
  if (!path.startsWith('/')) throw new BlksnapError('EINVAL', `difference storage path must be absolute: ${path}`);
  const full = resolve(path);
  const name = basename(full);
  if (name === '' || name === '.' || name === '..' || full === '/') {
    throw new BlksnapError('EINVAL', `difference storage path names no file: ${path}`);
  }
  try {
    const st = await lstat(full);
    if (st.isSymbolicLink()) throw new BlksnapError('ELOOP', `difference storage path is a symbolic link: ${full}`);
    if (st.isDirectory()) {
      throw new BlksnapError('EISDIR', `the difference storage path is a directory: ${full}; name a new file in it (e.g. ${join(full, 'diff0')})`);
    }
    throw new BlksnapError('EEXIST', `difference storage file already exists (it is never reused or overwritten): ${full}`);
  } catch (err) {
    if (err instanceof BlksnapError) throw err;
    const code = errnoOf(err);
    if (code === 'ENOTDIR') throw new BlksnapError('ENOTDIR', `a component of the difference storage path is not a directory: ${full}`);
    if (code !== 'ENOENT') throw new BlksnapError('EACCES', `cannot check difference storage path ${full}: ${(err as Error).message}`);
  }
  const parent = dirname(full);
  let st;
  try {
    st = await stat(parent);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') throw new BlksnapError('ENOENT', `directory for the difference storage does not exist: ${parent}`);
    if (code === 'ENOTDIR') throw new BlksnapError('ENOTDIR', `a component of the difference storage directory is not a directory: ${parent}`);
    throw new BlksnapError('EACCES', `cannot check the difference storage directory ${parent}: ${(err as Error).message}`);
  }
  if (!st.isDirectory()) throw new BlksnapError('ENOTDIR', `not a directory: ${parent}`);
  if ((st.mode & S_IWOTH) !== 0 && (st.mode & S_ISVTX) === 0) {
    throw new BlksnapError('EACCES', `the difference storage directory is world-writable without the sticky bit: ${parent}`);
  }
  if (st.uid !== 0 && st.uid !== ownerUid) {
    throw new BlksnapError('EACCES', `the difference storage directory belongs to another user (uid ${st.uid}): ${parent}`);
  }
  return { path: full, dir: { dev: st.dev, ino: st.ino } };
}
