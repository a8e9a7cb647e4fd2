/**
 * Difference storage the VAL-7.0 module reaches by sector ranges (append_storage):
 * a regular file reserved in full (fallocate), written out (fsync), mapped to the
 * sectors of its file system's block device (FIEMAP) and made immutable while the
 * snapshot holds it, so that no program (defragmenter, truncate, unlink, a helper
 * that died) can give its blocks to another file while the module writes there.
 * docs/kernel-driver.md ("Grow on VAL-7").
 */
import { fstatSync, readlinkSync, statSync } from 'node:fs';
import { splitDevT } from '../abi/dev-t.js';
import { BlksnapError } from '../abi/errno.js';
import type { SectorRange } from '../abi/types.js';
import { SECTOR_SIZE } from '../abi/types.js';
import { extentsToRanges, fileExtents } from './fiemap.js';
import type { IoctlLayer } from './ioctl-layer.js';
import { ior, iow } from './ioctl-numbers.js';

/** _IOR('f', 1, long), _IOW('f', 2, long): the inode flags (chattr). */
export const FS_IOC_GETFLAGS = ior('f'.charCodeAt(0), 1, 8);
export const FS_IOC_SETFLAGS = iow('f'.charCodeAt(0), 2, 8);
/** FS_IMMUTABLE_FL: no write open, truncate, fallocate, unlink, rename or extent move. */
export const FS_IMMUTABLE_FL = 0x10;
/** _IOR('X', 31, struct fsxattr[28]): fsx_xflags u32 at 0. */
export const FS_IOC_FSGETXATTR = ior('X'.charCodeAt(0), 31, 28);
/** FS_XFLAG_REALTIME: the data is on XFS's realtime device, not on st_dev. */
export const FS_XFLAG_REALTIME = 0x1;

/** Reserves bytes [offset, offset + length) of an open file (fallocate mode 0). */
export type ReserveSpace = (fd: number, offset: number, length: number) => Promise<void>;

export interface MapDeps {
  layer: IoctlLayer;
  reserveSpace: ReserveSpace;
  /** /dev path of a block device number, or "major:minor" when there is none. */
  resolveDevice: (major: number, minor: number) => string;
  /** Flushes a file's data and metadata (fsync). */
  fsync: (fd: number) => Promise<void>;
}

/** A file whose sectors the module writes: held open (and immutable) until the snapshot is destroyed. */
export interface MappedFile {
  fd: number;
  path: string;
  /** The block device of its file system, as the module opens it. */
  device: string;
  major: number;
  minor: number;
  ranges: SectorRange[];
  sectors: number;
}

/**
 * Reserves `sectors` of the new, empty regular file `fd`, maps it and sets it
 * immutable. Refused in words (EOPNOTSUPP, or the file system's errno) when any step
 * cannot promise a fixed place on a block device; the file is then left as it was
 * reserved (the caller removes it).
 */
export async function mapNewFile(deps: MapDeps, fd: number, path: string, sectors: number): Promise<MappedFile> {
  const what = `difference storage ${path}`;
  const st = fstatSync(fd);
  if (!st.isFile()) throw new BlksnapError('EINVAL', `${what} is not a regular file`);
  if (st.size !== 0) throw new BlksnapError('EINVAL', `${what} is not empty: only a new file is reserved and mapped`);
  const { major, minor } = splitDevT(st.dev);
  const device = deps.resolveDevice(major, minor);
  if (major === 0 || !device.startsWith('/')) {
    throw new BlksnapError(
      'EOPNOTSUPP',
      `${what}: its file system is not on a block device the module can open (device ${major}:${minor}: tmpfs, btrfs, overlay or a network file system)`,
    );
  }
  const bytes = sectors * SECTOR_SIZE;
  try {
    await deps.reserveSpace(fd, 0, bytes);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOSPC') throw new BlksnapError('ENOSPC', `${what}: the file system has no ${bytes} bytes free`);
    throw new BlksnapError('EOPNOTSUPP', `${what}: its file system cannot reserve space (${code ?? String(err)})`);
  }
  await deps.fsync(fd);
  await refuseRealtime(deps.layer, fd, what);
  const ranges = extentsToRanges(await fileExtents(deps.layer, fd, bytes, what), bytes, what);
  await setImmutable(deps.layer, fd, true, what);
  return { fd, path, device, major, minor, ranges, sectors };
}

/** An XFS realtime file's extents are on the realtime device, which st_dev does not name. */
async function refuseRealtime(layer: IoctlLayer, fd: number, what: string): Promise<void> {
  const attr = Buffer.alloc(28);
  try {
    await layer.ioctl(fd, FS_IOC_FSGETXATTR, attr);
  } catch {
    return; // no extended attributes of this kind: no realtime device either
  }
  if ((attr.readUInt32LE(0) & FS_XFLAG_REALTIME) !== 0) {
    throw new BlksnapError('EOPNOTSUPP', `${what}: it is on the realtime device of its XFS file system, which the mapping cannot name`);
  }
}

/** The inode flags (chattr) of an open file. */
async function inodeFlags(layer: IoctlLayer, fd: number): Promise<Buffer> {
  const flags = Buffer.alloc(8);
  await layer.ioctl(fd, FS_IOC_GETFLAGS, flags);
  return flags;
}

/** True when the open file carries FS_IMMUTABLE_FL (a file a driver mapped, until it is released). */
export async function isImmutable(layer: IoctlLayer, fd: number): Promise<boolean> {
  return ((await inodeFlags(layer, fd)).readUInt32LE(0) & FS_IMMUTABLE_FL) !== 0;
}

/** Sets or clears FS_IMMUTABLE_FL on an open file (needs CAP_LINUX_IMMUTABLE). */
export async function setImmutable(layer: IoctlLayer, fd: number, on: boolean, what: string): Promise<void> {
  try {
    const flags = await inodeFlags(layer, fd);
    const now = flags.readUInt32LE(0);
    flags.writeUInt32LE(on ? now | FS_IMMUTABLE_FL : now & ~FS_IMMUTABLE_FL, 0);
    await layer.ioctl(fd, FS_IOC_SETFLAGS, flags);
  } catch (err) {
    const errno = err instanceof BlksnapError ? err.errno : 'EIO';
    const why = errno === 'EPERM' ? 'the helper lacks CAP_LINUX_IMMUTABLE' : errno === 'ENOTTY' || errno === 'EOPNOTSUPP' ? 'its file system has no immutable flag' : errno;
    throw new BlksnapError(on ? 'EOPNOTSUPP' : errno, `${what}: cannot ${on ? 'set' : 'clear'} the immutable flag (${why})`);
  }
}

/** The whole disk's sysfs name of a device number (a partition's parent), or null when sysfs does not know it. */
function diskName(major: number, minor: number): string | null {
  try {
    const link = readlinkSync(`/sys/dev/block/${major}:${minor}`);
    const parts = link.split('/');
    let partition = false;
    try {
      statSync(`/sys/dev/block/${major}:${minor}/partition`);
      partition = true;
    } catch {
      // a whole disk
    }
    return (partition ? parts.at(-2) : parts.at(-1)) ?? null;
  } catch {
    return null;
  }
}

/**
 * True when `devicePath` is the storage's device or on the same disk: the module's
 * writes to the storage would then pass through the snapshot's own filter.
 */
export function sharesDisk(storage: Pick<MappedFile, 'device' | 'major' | 'minor'>, devicePath: string): boolean {
  if (devicePath === storage.device) return true;
  let rdev: number;
  try {
    rdev = statSync(devicePath).rdev;
  } catch {
    return false;
  }
  const { major, minor } = splitDevT(rdev);
  if (major === storage.major && minor === storage.minor) return true;
  const a = diskName(major, minor);
  return a !== null && a === diskName(storage.major, storage.minor);
}
