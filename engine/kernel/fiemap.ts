/**
 * FS_IOC_FIEMAP (linux/fiemap.h): where a file's bytes lie on the block device of
 * its file system, and whether that place is stable enough for a module to write
 * there directly (VAL-7.0 append_storage takes sector ranges of a block device).
 */
import { BlksnapError } from '../abi/errno.js';
import type { SectorRange } from '../abi/types.js';
import { SECTOR_SIZE } from '../abi/types.js';
import type { IoctlLayer } from './ioctl-layer.js';
import { iowr } from './ioctl-numbers.js';

/** struct fiemap: fm_start u64 0, fm_length u64 8, fm_flags u32 16, fm_mapped_extents u32 20, fm_extent_count u32 24, fm_reserved u32 28. */
export const FIEMAP_HEADER_SIZE = 32;
/** struct fiemap_extent: fe_logical u64 0, fe_physical u64 8, fe_length u64 16, fe_reserved64[2], fe_flags u32 40, fe_reserved[3]. */
export const FIEMAP_EXTENT_SIZE = 56;
/** _IOWR('f', 11, struct fiemap) = 0xc020660b */
export const FS_IOC_FIEMAP = iowr('f'.charCodeAt(0), 11, FIEMAP_HEADER_SIZE);
/** Write the file's dirty data out before mapping. */
export const FIEMAP_FLAG_SYNC = 0x1;

export const FIEMAP_EXTENT = {
  last: 0x1,
  unknown: 0x2,
  delalloc: 0x4,
  encoded: 0x8,
  dataEncrypted: 0x80,
  notAligned: 0x100,
  dataInline: 0x200,
  dataTail: 0x400,
  unwritten: 0x800,
  merged: 0x1000,
  shared: 0x2000,
} as const;

/**
 * Flags that make an extent unusable for writes below the file system, in words.
 * UNWRITTEN is not among them: it is what fallocate leaves, a fixed place whose
 * blocks the file system reads back as zeros (see docs/kernel-driver.md, "Grow").
 */
const REFUSED_FLAGS: [number, string][] = [
  [FIEMAP_EXTENT.unknown, 'its location is not known yet'],
  [FIEMAP_EXTENT.delalloc, 'it is delayed allocation, not yet placed on the device'],
  [FIEMAP_EXTENT.encoded, 'it is compressed or otherwise encoded'],
  [FIEMAP_EXTENT.dataEncrypted, 'it is encrypted by the file system'],
  [FIEMAP_EXTENT.notAligned, 'it is not block aligned'],
  [FIEMAP_EXTENT.dataInline, 'it is stored inline in metadata'],
  [FIEMAP_EXTENT.dataTail, 'it is packed with other files'],
  [FIEMAP_EXTENT.shared, 'it is shared with another file (reflink or deduplication)'],
];

export interface FileExtent {
  logical: number;
  physical: number;
  length: number;
  flags: number;
}

/** Extents per FIEMAP call. */
const EXTENTS_PER_CALL = 256;

export function encodeFiemapRequest(start: number, length: number, flags: number, extentCount: number): Buffer {
  const b = Buffer.alloc(FIEMAP_HEADER_SIZE + extentCount * FIEMAP_EXTENT_SIZE);
  b.writeBigUInt64LE(BigInt(start), 0);
  b.writeBigUInt64LE(BigInt(length), 8);
  b.writeUInt32LE(flags, 16);
  b.writeUInt32LE(extentCount, 24);
  return b;
}

export function decodeFiemapExtents(b: Buffer): FileExtent[] {
  const mapped = Math.min(b.readUInt32LE(20), b.readUInt32LE(24));
  const out: FileExtent[] = [];
  for (let i = 0; i < mapped; i++) {
    const o = FIEMAP_HEADER_SIZE + i * FIEMAP_EXTENT_SIZE;
    out.push({
      logical: Number(b.readBigUInt64LE(o)),
      physical: Number(b.readBigUInt64LE(o + 8)),
      length: Number(b.readBigUInt64LE(o + 16)),
      flags: b.readUInt32LE(o + 40),
    });
  }
  return out;
}

/** The extents of bytes [0, length) of the open file `fd` (FIEMAP_FLAG_SYNC), in calls of 256. */
export async function fileExtents(layer: IoctlLayer, fd: number, length: number, what: string): Promise<FileExtent[]> {
  const all: FileExtent[] = [];
  let start = 0;
  for (;;) {
    const req = encodeFiemapRequest(start, length - start, FIEMAP_FLAG_SYNC, EXTENTS_PER_CALL);
    try {
      await layer.ioctl(fd, FS_IOC_FIEMAP, req);
    } catch (err) {
      if (err instanceof BlksnapError && (err.errno === 'EOPNOTSUPP' || err.errno === 'ENOTTY')) {
        throw new BlksnapError('EOPNOTSUPP', `${what}: its file system cannot tell where the file lies on the device (no FIEMAP)`);
      }
      throw err;
    }
    const batch = decodeFiemapExtents(req);
    all.push(...batch);
    const last = batch.at(-1);
    if (!last || (last.flags & FIEMAP_EXTENT.last) !== 0 || last.logical + last.length >= length) return all;
    start = last.logical + last.length;
  }
}

/**
 * The sector ranges of the device holding bytes [0, length) of a file, from its
 * extents; refused in words where the file system cannot promise that writes to
 * those sectors land in the file and nowhere else.
 */
export function extentsToRanges(extents: FileExtent[], length: number, what: string): SectorRange[] {
  const ranges: SectorRange[] = [];
  let covered = 0;
  for (const e of extents) {
    for (const [flag, words] of REFUSED_FLAGS) {
      if ((e.flags & flag) !== 0) throw new BlksnapError('EOPNOTSUPP', `${what}: the extent at byte ${e.logical} cannot be written below the file system: ${words}`);
    }
    if (e.logical !== covered) throw new BlksnapError('EOPNOTSUPP', `${what}: bytes ${covered} to ${e.logical} have no blocks on the device (a hole)`);
    if (e.physical % SECTOR_SIZE !== 0 || e.length % SECTOR_SIZE !== 0) {
      throw new BlksnapError('EOPNOTSUPP', `${what}: the extent at byte ${e.logical} is not sector aligned`);
    }
    const count = Math.min(e.length, length - covered) / SECTOR_SIZE;
    const offset = e.physical / SECTOR_SIZE;
    const prev = ranges.at(-1);
    if (prev && prev.offset + prev.count === offset) prev.count += count;
    else ranges.push({ offset, count });
    covered += e.length;
    if (covered >= length) return ranges;
  }
  throw new BlksnapError('EOPNOTSUPP', `${what}: only ${covered} of ${length} bytes have blocks on the device`);
}
