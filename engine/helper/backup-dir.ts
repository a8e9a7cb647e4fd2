/**
 * A backup set folder reached with the rights of the user the helper works for.
 *
 * The folder is opened (O_PATH) with openat2 under the user's file-system identity
 * and without symlinks (CallerFs.openDir), a probe file is created in it and removed
 * again with the same identity (so the user can write there), and engine/backup then
 * works under `/proc/self/fd/N` of that descriptor: the folder cannot be swapped for
 * another by renaming its path. The chain folders DIR/<device-key> are created with
 * the user's identity too. What engine/backup writes there (as root) is given to the
 * user afterwards, file by file through descriptors opened without following symlinks.
 */
import { closeSync, fchownSync, fstatSync, openSync, readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { BlksnapError } from '../abi/errno.js';
import type { CallerFs } from './caller-fs.js';
import { O_CLOEXEC, O_PATH, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, archFlags, openat2 } from './native-fs.js';

const RESOLVE = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH;

/** A file-name-safe key of a device name: "disk1" -> "disk1", "/dev/sdb" -> "dev-sdb". */
export function deviceKey(device: string): string {
  const key = device.replace(/^\/+/, '').replace(/\//g, '-').replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');
  return key === '' ? 'device' : key.slice(0, 200);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

export class BackupDir {
  /** Chain folders opened beneath the set folder (descriptor per key). */
  private readonly chains = new Map<string, number>();

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly files: CallerFs,
  ) {}

  /**
   * Opens `path` with the caller's rights. `write`: also checks that the caller can
   * create files in it (a probe file, removed at once).
   */
  static async open(files: CallerFs, path: string, write: boolean): Promise<BackupDir> {
    const dir = files.openDir(path, 'backup folder');
    const opened = new BackupDir(path, dir.fd, files);
    if (write) {
      try {
        const probe = `.bsm-probe-${randomBytes(6).toString('hex')}`;
        const created = await files.createFile(`${path}/${probe}`, 'backup folder', async () => undefined, { keepDir: true });
        closeQuietly(created.fd);
        try {
          files.removeIn(created.dirFd!, probe, created);
        } finally {
          closeQuietly(created.dirFd!);
        }
        if (created.dirDev !== dir.dev || created.dirIno !== dir.ino) {
          throw new BlksnapError('EAGAIN', `the backup folder ${path} was replaced while it was being checked`);
        }
      } catch (err) {
        opened.close();
        throw err;
      }
    }
    return opened;
  }

  /** Where engine/backup reaches the folder: through the checked descriptor. */
  get base(): string {
    return `/proc/self/fd/${this.fd}`;
  }

  /** Text with the descriptor paths (what engine/backup saw) shown as the folders' own paths. */
  shown(text: string): string {
    const names = new Map<number, string>([[this.fd, this.path]]);
    for (const [key, fd] of this.chains) names.set(fd, `${this.path}/${key}`);
    return text.replace(/\/proc\/self\/fd\/(\d+)(?!\d)/g, (whole, n: string) => names.get(Number(n)) ?? whole);
  }

  /** An error of engine/backup, its message naming the folder's own path. */
  rewrite(err: unknown): unknown {
    if (!(err instanceof Error) || this.shown(err.message) === err.message) return err;
    if (err instanceof BlksnapError) {
      const prefix = `${err.errno}: `;
      const message = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
      return new BlksnapError(err.errno, this.shown(message));
    }
    err.message = this.shown(err.message);
    return err;
  }

  /**
   * The path engine/backup uses for a chain folder: the folder opened beneath the set
   * folder without symlinks (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), reached through
   * its descriptor, so renaming or replacing DIR/<key> meanwhile changes nothing. A
   * folder that does not exist (yet) is named through the set folder's descriptor.
   */
  chain(key: string): string {
    if (this.closed) throw new BlksnapError('EBADF', `the backup folder ${this.path} is closed`);
    let fd = this.chains.get(key);
    if (fd === undefined) {
      try {
        fd = openat2(this.fd, key, O_PATH | archFlags().O_DIRECTORY | O_CLOEXEC, 0, RESOLVE);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'ENOENT') return `${this.base}/${key}`;
        if (code === 'ELOOP' || code === 'EXDEV') throw new BlksnapError('ELOOP', `${this.path}/${key} is a symbolic link (never followed)`);
        throw new BlksnapError('EIO', `cannot open ${this.path}/${key}: ${(err as Error).message}`);
      }
      this.chains.set(key, fd);
    }
    return `/proc/self/fd/${fd}`;
  }

  /**
   * Checks that the file `name` of the chain folder `key` is a regular file (not a
   * symlink, not a device), reached without following symlinks.
   */
  checkRegular(key: string | null, name: string): void {
    if (!/^[^/]+$/.test(name) || name === '.' || name === '..') throw new BlksnapError('EINVAL', `the backup image name "${name}" is not a plain file name`);
    const dirFd = key === null ? this.fd : this.chains.get(key) ?? (this.chain(key), this.chains.get(key));
    if (dirFd === undefined) throw new BlksnapError('ENOENT', `there is no chain folder ${this.path}/${key ?? ''}`);
    let fd: number;
    try {
      fd = openat2(dirFd, name, O_PATH | O_CLOEXEC | archFlags().O_NOFOLLOW, 0, RESOLVE);
    } catch (err) {
      throw new BlksnapError('ENOENT', `the backup image ${name} cannot be reached (${(err as { code?: string }).code ?? 'error'}; symbolic links are not followed)`);
    }
    try {
      const st = fstatSync(fd);
      if (st.isSymbolicLink()) throw new BlksnapError('ELOOP', `the backup image ${name} is a symbolic link (never followed)`);
      if (!st.isFile()) throw new BlksnapError('EINVAL', `the backup image ${name} is not a regular file`);
    } finally {
      closeQuietly(fd);
    }
  }

  /** The chain folders (sub-folders, no symlinks) of the set folder. */
  chainKeys(): string[] {
    const out: string[] = [];
    for (const entry of readdirSync(this.base, { withFileTypes: true })) {
      if (entry.isDirectory() && !entry.name.startsWith('.')) out.push(entry.name);
    }
    return out.sort();
  }

  /**
   * Gives the user what the helper (root) created in the chain folder `key` and the
   * folder itself: each entry is opened beneath the set folder without following
   * symlinks, and changed through its descriptor. Nothing to do when not root.
   */
  giveToOwner(key: string): void {
    const uid = this.files.uid;
    const gid = this.files.gid;
    if (process.getuid?.() !== 0 || uid === 0) return;
    const { O_DIRECTORY } = archFlags();
    let dirFd: number;
    try {
      dirFd = openat2(this.fd, key, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE);
    } catch {
      return; // not created (the job failed before)
    }
    try {
      this.chownPath(dirFd, uid, gid);
      for (const name of readdirSync(`/proc/self/fd/${dirFd}`)) {
        let fd: number;
        try {
          fd = openat2(dirFd, name, O_PATH | O_CLOEXEC | archFlags().O_NOFOLLOW, 0, RESOLVE);
        } catch {
          continue;
        }
        try {
          const st = fstatSync(fd);
          if (st.isFile() && st.uid === 0) this.chownPath(fd, uid, gid);
        } finally {
          closeQuietly(fd);
        }
      }
    } finally {
      closeQuietly(dirFd);
    }
  }

  /** fchown of what an O_PATH descriptor names (reopened read-only through /proc: the same inode). */
  private chownPath(pathFd: number, uid: number, gid: number): void {
    const fd = openSync(`/proc/self/fd/${pathFd}`, 'r');
    try {
      fchownSync(fd, uid, gid);
    } finally {
      closeQuietly(fd);
    }
  }

  /** Creates the chain folder `key` (when missing) with the user's identity. */
  ensureChain(key: string): void {
    this.files.mkdirIn(this.fd, key, 'backup chain folder');
  }

  private closed = false;

  /** Closes the descriptors (once: a descriptor number may be reused afterwards). Messages still translate. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of this.chains.values()) closeQuietly(fd);
    closeQuietly(this.fd);
  }
}
