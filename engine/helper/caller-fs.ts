/**
 * Files touched on a client's behalf, with the client's rights, not root's.
 *
 * The helper runs as root for the user who started it (owner.ts). Every file it
 * creates, opens for writing, registers or removes for that user is reached with
 * openat2(2) under RESOLVE_NO_SYMLINKS (no symlink anywhere on the path, no /proc
 * magic links), while the thread's file-system uid, gid and groups are the user's:
 * the kernel itself checks the user's rights on every directory and on the file, in
 * the same call that opens it. The check and the use are one object: what is used
 * afterwards is the descriptor, never the path again. A directory swapped with
 * renameat2(RENAME_EXCHANGE) meanwhile gains nothing: whatever the path names at
 * that instant is reached with the user's rights.
 *
 * New files are created unnamed (O_TMPFILE) in the checked directory, recorded by
 * the caller's `beforeLink` hook (device and inode), and only then given their name
 * with linkat(2): a crash at any moment leaves either nothing, or a file whose exact
 * identity is already recorded. File systems without O_TMPFILE get the same record,
 * without the inode, before an O_CREAT|O_EXCL create.
 *
 * Never anything on /proc, /sys or other pseudo file systems, and under /dev only
 * block devices (the polkit policy requires administrator authorisation to start
 * the helper at all; those are opened as root, exclusively, by the engine).
 */
import { closeSync, fstatSync, readlinkSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { basename, dirname, normalize } from 'node:path';
import { BlksnapError, isErrnoName } from '../abi/errno.js';
import type { ErrnoName } from '../abi/errno.js';
import {
  AT_FDCWD,
  AT_SYMLINK_FOLLOW,
  O_CLOEXEC,
  O_CREAT,
  O_EXCL,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  PSEUDO_FS,
  RESOLVE_NO_MAGICLINKS,
  RESOLVE_NO_SYMLINKS,
  archFlags,
  canSwitchIdentity,
  fsTypeOf,
  linkat,
  mkdirat,
  openat2,
  unlinkat,
  withFsIdentity,
} from './native-fs.js';
import type { Owner } from './owner.js';

const RESOLVE = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
const PSEUDO_PREFIXES = ['/proc', '/sys', '/dev'];

export interface FileIdentity {
  dev: number;
  ino: number;
}

/** A file the helper created for the caller: its descriptor (now the caller's to close) and where it is. */
export interface CreatedFile extends FileIdentity {
  fd: number;
  /** The absolute path it was created at. */
  path: string;
  dirDev: number;
  dirIno: number;
  /**
   * With `keepDir`: the directory it was created in (O_PATH), for removing it later
   * from that very directory wherever it has been moved (removeIn); the caller closes it.
   */
  dirFd?: number;
}

/** Where a created file will be: recorded (ledger) before it gets its name. */
export interface PendingFile {
  path: string;
  dirDev: number;
  dirIno: number;
  /** Known when the file is created unnamed first (O_TMPFILE); absent on file systems without it. */
  identity: FileIdentity | null;
}

export interface OpenedFile extends FileIdentity {
  fd: number;
  path: string;
  isBlockDevice: boolean;
  rdev: number;
  size: number;
}

const WORDS: Partial<Record<string, string>> = {
  EACCES: 'permission denied (for the user the helper works for)',
  EPERM: 'operation not permitted (for the user the helper works for)',
  ENOENT: 'no such file or directory',
  EEXIST: 'the file already exists (it is never reused or overwritten)',
  ELOOP: 'a symbolic link on the path (symbolic links are not followed)',
  EXDEV: 'the path leaves the checked directory',
  ENOTDIR: 'a component of the path is not a directory',
  EISDIR: 'it is a directory',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the file system',
  EDQUOT: 'the disk quota is exhausted',
  ENAMETOOLONG: 'the name is too long',
};

function toBlksnap(err: unknown, what: string): BlksnapError {
  if (err instanceof BlksnapError) return err;
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
  const errno: ErrnoName = code === 'EXDEV' ? 'EACCES' : code === 'EDQUOT' ? 'ENOSPC' : isErrnoName(code) ? code : 'EIO';
  return new BlksnapError(errno, `${what}: ${(code && WORDS[code]) ?? (err instanceof Error ? err.message : String(err))}`);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** The path the kernel gives for an open descriptor. */
function kernelPath(fd: number): string {
  return readlinkSync(`/proc/self/fd/${fd}`);
}

function underPseudoTree(path: string): boolean {
  return PSEUDO_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`));
}

/** Checks an absolute path argument; returns it normalised (no `.`/`..` games: `..` is refused outright). */
export function checkedAbsolute(path: string, what: string): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new BlksnapError('EINVAL', `${what} must be an absolute path: ${String(path)}`);
  if (path.includes('\0')) throw new BlksnapError('EINVAL', `${what} contains a NUL byte`);
  if (path.split('/').includes('..')) throw new BlksnapError('EINVAL', `${what} must not contain "..": ${path}`);
  const full = normalize(path);
  return full.length > 1 && full.endsWith('/') ? full.slice(0, -1) : full;
}

export class CallerFs {
  private readonly groups: number[];

  constructor(private readonly owner: Owner) {
    this.groups = owner.groups ?? [owner.gid];
  }

  get uid(): number {
    return this.owner.uid;
  }

  get gid(): number {
    return this.owner.gid;
  }

  /** Creates the directory `name` in the open directory `dirFd` with the owner's rights (an existing directory is fine). */
  mkdirIn(dirFd: number, name: string, what: string, mode = 0o700): void {
    try {
      this.asOwner(() => mkdirat(dirFd, name, mode));
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw toBlksnap(err, `${what}: cannot create ${name}`);
      const st = this.lstatIn(dirFd, name);
      if (!st?.isDirectory()) throw new BlksnapError('ENOTDIR', `${what}: ${name} exists and is not a directory (symbolic links are not followed)`);
    }
  }

  /** Gives the open file `fd` the name `name` in the directory `dirFd`, with the owner's rights (EEXIST when taken). */
  linkIn(fd: number, dirFd: number, name: string, what: string): void {
    try {
      this.asOwner(() => linkat(AT_FDCWD, `/proc/self/fd/${fd}`, dirFd, name, AT_SYMLINK_FOLLOW));
    } catch (err) {
      throw toBlksnap(err, `${what}: cannot name ${name}`);
    }
  }

  /** Runs a native call with the owner's file-system identity (as root), or as ourselves otherwise. */
  private asOwner<T>(fn: () => T): T {
    if (!canSwitchIdentity() || this.owner.uid === 0) return fn();
    return withFsIdentity(this.owner.uid, this.owner.gid, this.groups, fn);
  }

  /** Refuses a descriptor on a pseudo file system or under /proc, /sys, /dev (not a block device). */
  private refusePseudo(fd: number, path: string, what: string): void {
    const kind = PSEUDO_FS.get(fsTypeOf(fd));
    if (kind) throw new BlksnapError('EPERM', `${what}: ${path} is on ${kind}, not a place for files`);
    if (underPseudoTree(kernelPath(fd))) throw new BlksnapError('EPERM', `${what}: ${path} is under /proc, /sys or /dev (only block devices may be used there)`);
  }

  /** Opens the directory `dir` (O_PATH) with the owner's rights; the caller closes it. */
  openDir(dir: string, what: string): { fd: number; dev: number; ino: number } {
    const { O_DIRECTORY } = archFlags();
    let fd: number;
    try {
      fd = this.asOwner(() => openat2(AT_FDCWD, dir, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE));
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ENOENT') throw new BlksnapError('ENOENT', `${what}: the directory ${dir} does not exist`);
      throw toBlksnap(err, `${what}: cannot use the directory ${dir}`);
    }
    try {
      this.refusePseudo(fd, dir, what);
      const st = fstatSync(fd);
      return { fd, dev: st.dev, ino: st.ino };
    } catch (err) {
      closeQuietly(fd);
      throw toBlksnap(err, what);
    }
  }

  /**
   * Creates a new regular file (mode `mode`, owned by the owner) at `path`, which must
   * not exist. `beforeLink` runs before the file has its name: record it there.
   */
  async createFile(
    path: string,
    what: string,
    beforeLink: (pending: PendingFile) => Promise<void>,
    options: { mode?: number; keepDir?: boolean } = {},
  ): Promise<CreatedFile> {
    const mode = options.mode ?? 0o600;
    const full = checkedAbsolute(path, what);
    const name = basename(full);
    if (full === '/' || name === '') throw new BlksnapError('EINVAL', `${what} names no file: ${path}`);
    const dir = this.openDir(dirname(full), what);
    let keep = false;
    try {
      const { O_TMPFILE, O_NOFOLLOW } = archFlags();
      let fd: number | null = null;
      try {
        fd = this.asOwner(() => openat2(dir.fd, '.', O_TMPFILE | O_RDWR | O_CLOEXEC, mode, RESOLVE));
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code !== 'EOPNOTSUPP' && code !== 'EISDIR' && code !== 'EINVAL') throw toBlksnap(err, `${what}: cannot create ${full}`);
      }
      if (fd !== null) {
        const tmpFd = fd;
        try {
          const st = fstatSync(tmpFd);
          await beforeLink({ path: full, dirDev: dir.dev, dirIno: dir.ino, identity: { dev: st.dev, ino: st.ino } });
          this.asOwner(() => linkat(AT_FDCWD, `/proc/self/fd/${tmpFd}`, dir.fd, name, AT_SYMLINK_FOLLOW));
          keep = options.keepDir === true;
          return { fd: tmpFd, path: full, dev: st.dev, ino: st.ino, dirDev: dir.dev, dirIno: dir.ino, ...(keep ? { dirFd: dir.fd } : {}) };
        } catch (err) {
          closeQuietly(tmpFd);
          throw this.explainExisting(err, dir.fd, full, what);
        }
      }
      // no O_TMPFILE here: record the place first, then create the name exclusively
      await beforeLink({ path: full, dirDev: dir.dev, dirIno: dir.ino, identity: null });
      let created: number;
      try {
        created = this.asOwner(() => openat2(dir.fd, name, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, mode, RESOLVE));
      } catch (err) {
        throw this.explainExisting(err, dir.fd, full, what);
      }
      const st = fstatSync(created);
      keep = options.keepDir === true;
      return { fd: created, path: full, dev: st.dev, ino: st.ino, dirDev: dir.dev, dirIno: dir.ino, ...(keep ? { dirFd: dir.fd } : {}) };
    } finally {
      if (!keep) closeQuietly(dir.fd);
    }
  }

  /**
   * An unnamed temporary file (O_TMPFILE | O_EXCL: it can never be given a name) in
   * the directory `dir`, created with the owner's rights (mode 0600, the owner's);
   * it vanishes with its last descriptor, so nothing is left behind. The caller
   * closes the descriptor.
   */
  createUnnamed(dir: string, what: string): OpenedFile {
    const full = checkedAbsolute(dir, what);
    const d = this.openDir(full, what);
    try {
      const { O_TMPFILE } = archFlags();
      let fd: number;
      try {
        fd = this.asOwner(() => openat2(d.fd, '.', O_TMPFILE | O_EXCL | O_RDWR | O_CLOEXEC, 0o600, RESOLVE));
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'EOPNOTSUPP' || code === 'EISDIR' || code === 'EINVAL') {
          throw new BlksnapError('EOPNOTSUPP', `${what}: the file system of ${full} cannot hold an unnamed temporary file; name a new file there instead`);
        }
        throw toBlksnap(err, `${what}: cannot create an unnamed file in ${full}`);
      }
      const st = fstatSync(fd);
      return { fd, path: full, dev: st.dev, ino: st.ino, isBlockDevice: false, rdev: 0, size: 0 };
    } finally {
      closeQuietly(d.fd);
    }
  }

  /**
   * A readable descriptor of the directory `dir` (for an ioctl such as FIFREEZE),
   * opened with the owner's rights and without symlinks; the caller closes it.
   */
  openDirectory(dir: string, what: string): { fd: number; kernelPath: string } {
    const full = checkedAbsolute(dir, what);
    const { O_DIRECTORY } = archFlags();
    let fd: number;
    try {
      fd = this.asOwner(() => openat2(AT_FDCWD, full, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE));
    } catch (err) {
      throw toBlksnap(err, `${what}: cannot open ${full}`);
    }
    return { fd, kernelPath: kernelPath(fd) };
  }

  /** A create that failed: says what is in the way when something exists at the name. */
  private explainExisting(err: unknown, dirFd: number, full: string, what: string): BlksnapError {
    if ((err as { code?: string }).code === 'EEXIST') {
      const st = this.lstatIn(dirFd, basename(full));
      if (st?.isSymbolicLink()) return new BlksnapError('ELOOP', `${what}: ${full} is a symbolic link (never followed, never replaced)`);
      if (st?.isDirectory()) return new BlksnapError('EISDIR', `the ${what} path is a directory: ${full}; name a new file in it (e.g. ${full}/diff0)`);
    }
    return toBlksnap(err, `${what}: cannot create ${full}`);
  }

  /** lstat of `name` in the directory `dirFd`, reached with the owner's rights; null when not there. */
  private lstatIn(dirFd: number, name: string): Stats | null {
    let fd: number;
    try {
      fd = this.asOwner(() => openat2(dirFd, name, O_PATH | O_CLOEXEC | archFlags().O_NOFOLLOW, 0, RESOLVE));
    } catch {
      return null;
    }
    try {
      return fstatSync(fd);
    } finally {
      closeQuietly(fd);
    }
  }

  /** The regular file at `path` in the directory `dir` (when given), reached with the owner's rights; null otherwise. */
  statIfRegular(path: string, dir: FileIdentity | null): (FileIdentity & { size: number; uid: number }) | null {
    const full = checkedAbsolute(path, 'lookup');
    let d: { fd: number; dev: number; ino: number };
    try {
      d = this.openDir(dirname(full), 'lookup');
    } catch {
      return null;
    }
    try {
      if (dir && (d.dev !== dir.dev || d.ino !== dir.ino)) return null;
      const st = this.lstatIn(d.fd, basename(full));
      return st?.isFile() ? { dev: st.dev, ino: st.ino, size: st.size, uid: st.uid } : null;
    } finally {
      closeQuietly(d.fd);
    }
  }

  /**
   * Opens an existing image: a regular file with the owner's rights (read-write, or
   * read-only), or a block device under /dev (as root: administrators only).
   */
  openExisting(path: string, what: string, options: { write: boolean }): OpenedFile {
    const full = checkedAbsolute(path, what);
    const access = options.write ? O_RDWR : O_RDONLY;
    let fd: number;
    try {
      fd = this.asOwner(() => openat2(AT_FDCWD, full, access | O_CLOEXEC | archFlags().O_NOFOLLOW, 0, RESOLVE));
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ELOOP' || code === 'EACCES' || code === 'EPERM') {
        const device = this.openBlockDevice(full, access);
        if (device) return device;
      }
      throw toBlksnap(err, `${what}: cannot open ${full}`);
    }
    try {
      const st = fstatSync(fd);
      if (st.isBlockDevice()) return { fd, path: full, dev: st.dev, ino: st.ino, isBlockDevice: true, rdev: st.rdev, size: 0 };
      if (!st.isFile()) throw new BlksnapError('EINVAL', `${what}: ${full} is neither a regular file nor a block device`);
      this.refusePseudo(fd, full, what);
      return { fd, path: full, dev: st.dev, ino: st.ino, isBlockDevice: false, rdev: 0, size: st.size };
    } catch (err) {
      closeQuietly(fd);
      throw toBlksnap(err, what);
    }
  }

  /**
   * A block device node under /dev named by `path` (udev's symlinks such as
   * /dev/disk/by-id/... are resolved by the kernel-owned /dev tree only), or null.
   */
  private openBlockDevice(path: string, access: number): OpenedFile | null {
    if (!underPseudoTree(path) || !path.startsWith('/dev/')) return null;
    let fd: number;
    try {
      // /dev belongs to root and udev: its symlinks are followed, but the result must stay under /dev
      fd = openat2(AT_FDCWD, path, access | O_CLOEXEC, 0, RESOLVE_NO_MAGICLINKS);
    } catch {
      return null;
    }
    const st = fstatSync(fd);
    if (!st.isBlockDevice() || !kernelPath(fd).startsWith('/dev/')) {
      closeQuietly(fd);
      throw new BlksnapError('EPERM', `${path} is not a block device: under /dev only block devices may be used`);
    }
    return { fd, path, dev: st.dev, ino: st.ino, isBlockDevice: true, rdev: st.rdev, size: 0 };
  }

  /**
   * Removes the regular file at `path` when it is still `identity`, in the directory
   * `dir` it was created in, with the owner's rights. False when it is gone or is
   * something else now (then nothing is touched).
   */
  removeIfSame(path: string, identity: FileIdentity, dir: FileIdentity | null): boolean {
    const full = checkedAbsolute(path, 'removal');
    let d: { fd: number; dev: number; ino: number };
    try {
      d = this.openDir(dirname(full), 'removal');
    } catch (err) {
      if (err instanceof BlksnapError && (err.errno === 'ENOENT' || err.errno === 'ENOTDIR' || err.errno === 'ELOOP')) return false;
      throw err;
    }
    try {
      if (dir && (d.dev !== dir.dev || d.ino !== dir.ino)) return false;
      return this.removeIn(d.fd, basename(full), identity, full);
    } finally {
      closeQuietly(d.fd);
    }
  }

  /**
   * Removes the entry `name` of the open directory `dirFd` when it is the regular
   * file `identity`, with the owner's rights; false when it is gone or something else.
   */
  removeIn(dirFd: number, name: string, identity: FileIdentity, shownAs = name): boolean {
    const st = this.lstatIn(dirFd, name);
    if (!st?.isFile() || st.dev !== identity.dev || st.ino !== identity.ino) return false;
    try {
      this.asOwner(() => unlinkat(dirFd, name));
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return false;
      throw toBlksnap(err, `cannot remove ${shownAs}`);
    }
    return true;
  }
}
