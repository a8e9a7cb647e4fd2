/**
 * Image locks that qemu understands. qemu (block/file-posix.c, locking=on) describes
 * who uses an image with shared open-file-description byte-range locks (F_OFD_SETLK,
 * F_RDLCK, one byte each): byte 100+i when it holds permission bit i, byte 200+i when
 * it does not let others have bit i. Before it uses an image it checks that nobody
 * else holds a lock that conflicts (F_OFD_GETLK as if for a write lock).
 *
 * The engine fronts an image as a writer: it reads and writes it, and lets nobody else
 * write or resize it. So `qemu-io`, `qemu-img` writes and a second helper are refused
 * ("Failed to get "write" lock"), a reader that forbids writers (plain `qemu-img info`)
 * is too, and `qemu-img info -U` (force share) still reads it. The locks belong to the
 * open file description, so they last exactly as long as the engine's fd.
 */
import koffi from 'koffi';
import { BlksnapError, errnoName } from '../abi/errno.js';

/** qemu's permission bits (the bit number is the lock byte's offset from the base). */
const PERM = { consistentRead: 0, write: 1, writeUnchanged: 2, resize: 3 } as const;
const PERM_NAMES = ['consistent read', 'write', 'write unchanged', 'resize'] as const;
export const LOCK_PERM_BASE = 100;
export const LOCK_SHARED_BASE = 200;

/** What the engine holds, and what it does not share. */
const USED = [PERM.consistentRead, PERM.write];
const NOT_SHARED = [PERM.write, PERM.resize];

// fcntl commands and lock types (asm-generic, the same on every Linux architecture)
const F_OFD_GETLK = 36;
const F_OFD_SETLK = 37;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;
const SEEK_SET = 0;
// errno numbers of a refused lock (EAGAIN/EACCES: held by others; the rest: no OFD locks on this file system)
const EAGAIN = 11;
const EACCES = 13;
const EINVAL = 22;
const ENOLCK = 37;
const EOPNOTSUPP = 95;
/** struct flock on 64-bit Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid. */
const FLOCK_SIZE = 32;

type FcntlFn = (fd: number, cmd: number, arg: Buffer) => number;
let cachedFcntl: FcntlFn | undefined;

function fcntl(): FcntlFn {
  if (!cachedFcntl) {
    if (process.arch !== 'x64' && process.arch !== 'arm64') {
      throw new BlksnapError('EOPNOTSUPP', `image locks are implemented for x64 and arm64 Linux, not ${process.arch}`);
    }
    const libc = koffi.load('libc.so.6');
    cachedFcntl = libc.func('int fcntl(int fd, int cmd, void *arg)') as unknown as FcntlFn;
  }
  return cachedFcntl;
}

function flock(type: number, start: number): Buffer {
  const b = Buffer.alloc(FLOCK_SIZE);
  b.writeInt16LE(type, 0);
  b.writeInt16LE(SEEK_SET, 2);
  b.writeBigInt64LE(BigInt(start), 8);
  b.writeBigInt64LE(1n, 16);
  return b;
}

/** The errno of the last fcntl, by name ("EAGAIN"), or "errno N". */
function lastErrno(): string {
  const n = koffi.errno();
  return errnoName(n) ?? `errno ${n}`;
}

/** Sets (F_RDLCK) or drops (F_UNLCK) our lock on one byte. */
function setLock(fd: number, type: number, byte: number): boolean {
  return fcntl()(fd, F_OFD_SETLK, flock(type, byte)) === 0;
}

/** True when another open file description holds a lock on `byte` (qemu's conflict test). */
export function lockedByOthers(fd: number, byte: number): boolean {
  const b = flock(F_WRLCK, byte);
  if (fcntl()(fd, F_OFD_GETLK, b) !== 0) {
    throw new BlksnapError('EIO', `cannot test the lock on byte ${byte}: ${lastErrno()}`);
  }
  return b.readInt16LE(0) !== F_UNLCK;
}

/** The bytes the engine locks while it fronts an image. */
export function engineLockBytes(): number[] {
  return [...USED.map((i) => LOCK_PERM_BASE + i), ...NOT_SHARED.map((i) => LOCK_SHARED_BASE + i)];
}

/**
 * Takes the engine's locks on `fd` (an image file or block device opened read-write),
 * then checks that nobody else objects. EBUSY, naming the conflict, when another
 * program writes the image or does not let it be written; the locks taken are dropped
 * again then. File systems without OFD locks (EINVAL/ENOLCK, e.g. some network file
 * systems) leave the image unlocked, as qemu does with locking=auto.
 */
export function lockImage(fd: number, path: string): { locked: boolean } {
  const bytes = engineLockBytes();
  const taken: number[] = [];
  const undo = (): void => {
    for (const byte of taken) setLock(fd, F_UNLCK, byte);
  };
  for (const byte of bytes) {
    if (!setLock(fd, F_RDLCK, byte)) {
      const n = koffi.errno();
      undo();
      if (n === EINVAL || n === ENOLCK || n === EOPNOTSUPP) return { locked: false };
      if (n === EAGAIN || n === EACCES) throw busy(path, `another program holds a conflicting lock on byte ${byte}`);
      throw new BlksnapError('EIO', `cannot lock ${path}: ${errnoName(n) ?? `errno ${n}`}`);
    }
    taken.push(byte);
  }
  const conflicts: string[] = [];
  // a permission we use must be shared by everybody else
  for (const i of USED) {
    if (lockedByOthers(fd, LOCK_SHARED_BASE + i)) conflicts.push(`does not allow "${PERM_NAMES[i]}" by others`);
  }
  // a permission we do not share must not be held by anybody else
  for (const i of NOT_SHARED) {
    if (lockedByOthers(fd, LOCK_PERM_BASE + i)) conflicts.push(`holds the "${PERM_NAMES[i]}" permission`);
  }
  if (conflicts.length > 0) {
    undo();
    throw busy(path, `another program (a qemu process, qemu-img, qemu-nbd or another helper) ${conflicts.join(' and ')}`);
  }
  return { locked: true };
}

function busy(path: string, why: string): BlksnapError {
  return new BlksnapError('EBUSY', `cannot front ${path}: it is in use: ${why}; stop that program first`);
}
