/**
 * The few Linux file-system calls Node does not offer, through koffi (libc.so.6):
 * openat2(2) with RESOLVE_* flags, linkat/unlinkat relative to a directory fd,
 * fstatfs(2), and the per-thread credential calls setfsuid/setfsgid/setgroups.
 *
 * The credential calls are made as raw syscalls on purpose: they change only the
 * calling thread (Node's main thread, where koffi's synchronous calls run), never
 * libuv's worker threads. glibc's setgroups() would change every thread.
 */
import koffi from 'koffi';
import { BlksnapError } from '../abi/errno.js';

interface ArchTable {
  setgroups: number;
  getgroups: number;
  setfsuid: number;
  setfsgid: number;
  openat2: number;
  /** open(2) flags that differ between architectures. */
  O_DIRECTORY: number;
  O_NOFOLLOW: number;
}

const ARCH: Record<string, ArchTable> = {
  x64: { setgroups: 116, getgroups: 115, setfsuid: 122, setfsgid: 123, openat2: 437, O_DIRECTORY: 0o200000, O_NOFOLLOW: 0o400000 },
  arm64: { setgroups: 159, getgroups: 158, setfsuid: 151, setfsgid: 152, openat2: 437, O_DIRECTORY: 0o40000, O_NOFOLLOW: 0o100000 },
};

export const AT_FDCWD = -100;
export const AT_SYMLINK_FOLLOW = 0x400;
export const O_RDONLY = 0;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;
const O_TMPFILE_BASE = 0o20000000;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;

/** Magic numbers of pseudo file systems (statfs f_type) the helper never creates or opens files on. */
export const PSEUDO_FS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0xcafe4a11, 'bpf'],
  [0x6e736673, 'nsfs'],
  [0x42494e4d, 'binfmt_misc'],
  [0x6165676c, 'pstorefs'],
  [0xde5e81e4, 'efivarfs'],
  [0x50495045, 'pipefs'],
  [0x534f434b, 'sockfs'],
]);

type SyscallFn = (nr: number, ...args: unknown[]) => number;

interface Libc {
  syscall: SyscallFn;
  linkat: (olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number) => number;
  unlinkat: (dirfd: number, path: string, flags: number) => number;
  mkdirat: (dirfd: number, path: string, mode: number) => number;
  fstatfs: (fd: number, buf: Buffer) => number;
  table: ArchTable;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  const table = ARCH[process.arch];
  if (!table || process.platform !== 'linux') {
    throw new BlksnapError('EOPNOTSUPP', `file checks with the caller's rights need Linux on x86_64 or arm64 (this is ${process.platform}/${process.arch})`);
  }
  const lib = koffi.load('libc.so.6');
  libc = {
    syscall: lib.func('long syscall(long number, ...)') as unknown as SyscallFn,
    linkat: lib.func('int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)') as unknown as Libc['linkat'],
    unlinkat: lib.func('int unlinkat(int dirfd, const char *path, int flags)') as unknown as Libc['unlinkat'],
    mkdirat: lib.func('int mkdirat(int dirfd, const char *path, uint32_t mode)') as unknown as Libc['mkdirat'],
    fstatfs: lib.func('int fstatfs(int fd, _Out_ uint8_t *buf)') as unknown as Libc['fstatfs'],
    table,
  };
  return libc;
}

export function archFlags(): { O_DIRECTORY: number; O_NOFOLLOW: number; O_TMPFILE: number } {
  const t = load().table;
  return { O_DIRECTORY: t.O_DIRECTORY, O_NOFOLLOW: t.O_NOFOLLOW, O_TMPFILE: O_TMPFILE_BASE | t.O_DIRECTORY };
}

/** The errno name of the last failed call (from koffi's saved errno). */
export function lastErrno(): string {
  const n = koffi.errno();
  return ERRNO_NAMES[n] ?? `E${n}`;
}

/** A thrown error carrying the errno name, like Node's fs errors (`code`). */
export class NativeFsError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function fail(what: string): never {
  const code = lastErrno();
  throw new NativeFsError(code, `${what}: ${code}`);
}

export function openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number {
  const { syscall, table } = load();
  const how = Buffer.alloc(24);
  how.writeBigUInt64LE(BigInt(flags), 0);
  how.writeBigUInt64LE(BigInt(mode), 8);
  how.writeBigUInt64LE(BigInt(resolve), 16);
  const fd = syscall(table.openat2, 'int', dirfd, 'const char *', path, 'uint8_t *', how, 'size_t', 24);
  if (fd < 0) fail(`openat2 ${path}`);
  return Number(fd);
}

export function linkat(olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number): void {
  if (load().linkat(olddirfd, oldpath, newdirfd, newpath, flags) < 0) fail(`linkat ${newpath}`);
}

export function unlinkat(dirfd: number, path: string): void {
  if (load().unlinkat(dirfd, path, 0) < 0) fail(`unlinkat ${path}`);
}

export function mkdirat(dirfd: number, path: string, mode: number): void {
  if (load().mkdirat(dirfd, path, mode) < 0) fail(`mkdirat ${path}`);
}

/** statfs f_type of an open fd. */
export function fsTypeOf(fd: number): number {
  const buf = Buffer.alloc(120);
  if (load().fstatfs(fd, buf) < 0) fail('fstatfs');
  // struct statfs on 64-bit Linux: __fsword_t f_type first (8 bytes)
  return Number(buf.readBigInt64LE(0) & 0xffffffffn);
}

/** Whether this process may change its file-system identity (it runs as root). */
export function canSwitchIdentity(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Runs `fn` with the calling thread's file-system uid, gid and groups set to the
 * caller's, then restores root's. Synchronous on purpose: no other JavaScript runs
 * in between, and libuv's threads are not affected.
 */
export function withFsIdentity<T>(uid: number, gid: number, groups: readonly number[], fn: () => T): T {
  const { syscall, table } = load();
  const count = Number(syscall(table.getgroups, 'int', 0, 'uint32_t *', null));
  if (count < 0) fail('getgroups');
  const saved = Buffer.alloc(Math.max(4, 4 * count));
  const nSaved = Number(syscall(table.getgroups, 'int', count, 'uint32_t *', saved));
  if (nSaved < 0) fail('getgroups');
  const list = Buffer.alloc(Math.max(4, 4 * groups.length));
  groups.forEach((g, i) => list.writeUInt32LE(g, 4 * i));
  if (Number(syscall(table.setgroups, 'size_t', groups.length, 'uint32_t *', list)) < 0) fail('setgroups');
  syscall(table.setfsgid, 'uint32_t', gid);
  syscall(table.setfsuid, 'uint32_t', uid);
  try {
    // setfsuid returns the previous value: asking again tells whether the change held
    if (Number(syscall(table.setfsuid, 'uint32_t', uid)) !== uid || Number(syscall(table.setfsgid, 'uint32_t', gid)) !== gid) {
      throw new BlksnapError('EPERM', `cannot take the file-system identity of uid ${uid}`);
    }
    return fn();
  } finally {
    syscall(table.setfsuid, 'uint32_t', 0);
    syscall(table.setfsgid, 'uint32_t', 0);
    syscall(table.setgroups, 'size_t', nSaved, 'uint32_t *', saved);
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  5: 'EIO',
  9: 'EBADF',
  13: 'EACCES',
  16: 'EBUSY',
  17: 'EEXIST',
  18: 'EXDEV',
  20: 'ENOTDIR',
  21: 'EISDIR',
  22: 'EINVAL',
  24: 'EMFILE',
  27: 'EFBIG',
  28: 'ENOSPC',
  30: 'EROFS',
  36: 'ENAMETOOLONG',
  38: 'ENOSYS',
  40: 'ELOOP',
  95: 'EOPNOTSUPP',
  122: 'EDQUOT',
};
