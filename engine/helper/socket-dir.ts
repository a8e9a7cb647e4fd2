/**
 * The helper's private directory: the socket lives in a directory only its owner
 * can enter (0700, owned by the user who started the helper), so the socket's own
 * permissions are not the only gate. The helper runs as root in a place the user
 * can write to (/run/user/UID), so nothing here follows a symlink: the directory is
 * opened O_NOFOLLOW|O_DIRECTORY and changed through the descriptor, the socket is
 * created under a 0077 umask (no chmod by path) and handed over with lchown.
 */
import { constants as fsConstants } from 'node:fs';
import { lchown, lstat, mkdir, open, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { BlksnapError } from '../abi/errno.js';
import type { Owner } from './owner.js';
import { errnoOf } from './fs-errors.js';

function selfUid(): number {
  return typeof process.getuid === 'function' ? process.getuid() : 0;
}

/** Creates (or checks and tightens) the socket directory; throws on anything suspicious. */
export async function prepareSocketDir(dir: string, owner: Owner): Promise<void> {
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') {
      throw new BlksnapError(
        'ENOENT',
        `cannot create the socket directory ${dir}: ${dirname(dir)} does not exist (no login session for this user under /run/user?); choose a --socket in an existing directory`,
      );
    }
    if (code === 'EACCES' || code === 'EPERM') throw new BlksnapError('EACCES', `cannot create the socket directory ${dir}: permission denied; choose another --socket`);
    if (code !== 'EEXIST') throw err;
  }
  let handle;
  try {
    handle = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      throw new BlksnapError('ENOTDIR', `the socket directory ${dir} is not a directory (or is a symlink); remove it or choose another --socket`);
    }
    throw err;
  }
  try {
    const st = await handle.stat();
    if (st.uid !== selfUid() && st.uid !== owner.uid) {
      throw new BlksnapError('EACCES', `the socket directory ${dir} belongs to another user (uid ${st.uid}); choose another --socket`);
    }
    await handle.chmod(0o700);
    if (selfUid() === 0 && (st.uid !== owner.uid || st.gid !== owner.gid)) await handle.chown(owner.uid, owner.gid);
  } finally {
    await handle.close();
  }
}

function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** Removes a stale socket left by a helper that died; refuses to touch a live one or a non-socket. */
export async function removeStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) throw new BlksnapError('EEXIST', `${path} exists and is not a socket; move it away or choose another --socket`);
  if (await isListening(path)) {
    throw new BlksnapError(
      'EBUSY',
      `another helper is already listening on ${path}; use it (blksnap-manager version --socket ${path}), stop it first (SIGTERM), or give this one another --socket`,
    );
  }
  await unlink(path);
}

/**
 * Which file a socket is: device, inode and change time in nanoseconds (an inode
 * number alone is reused at once for the next socket created in the directory).
 */
export interface SocketIdentity {
  dev: bigint;
  ino: bigint;
  ctimeNs: bigint;
}

/** Take it after the last change of the socket (handOverSocket). */
export async function socketIdentity(path: string): Promise<SocketIdentity> {
  const st = await lstat(path, { bigint: true });
  return { dev: st.dev, ino: st.ino, ctimeNs: st.ctimeNs };
}

/**
 * Removes the socket at `path` only if it is still the one the helper created: a
 * helper started while this one was shutting down may already listen there.
 */
export async function removeOwnSocket(path: string, own: SocketIdentity): Promise<void> {
  try {
    const st = await lstat(path, { bigint: true });
    if (st.isSocket() && st.dev === own.dev && st.ino === own.ino && st.ctimeNs === own.ctimeNs) await unlink(path);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}

/** Hands a socket the helper created to the owner (never following a symlink). */
export async function handOverSocket(path: string, owner: Owner): Promise<void> {
  const st = await lstat(path);
  if (!st.isSocket()) throw new Error(`${path} is not the socket the helper created`);
  if ((st.mode & 0o077) !== 0) throw new Error(`${path} is accessible to other users (mode ${(st.mode & 0o777).toString(8)})`);
  if (selfUid() === 0 && (st.uid !== owner.uid || st.gid !== owner.gid)) await lchown(path, owner.uid, owner.gid);
}
