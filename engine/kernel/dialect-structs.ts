/**
 * The structs in which the VAL-7.0 module (veeamblksnap.ko + bdevfilter.ko) and the
 * lk6.15 patch set differ from v6 (abi-structs.ts), x86_64 little-endian
 * (docs: /work/shared/specs/blksnap-abi-dialects.md sections 3 and 5). The ABI test
 * compiles both headers and compares every size and offset here.
 */
import { BlksnapError } from '../abi/errno.js';
import { BLKFILTER_NAME_LENGTH, encodeUuid } from './abi-structs.js';

export const DIALECT_LAYOUT = {
  /** VAL-7.0 and lk6.15: a path pointer at 8, the id at 16 (v6: fd at 8, id at 12). */
  blksnap_snapshot_create_path: { size: 32, fields: { diff_storage_limit_sect: 0, diff_storage_filename: 8, id: 16 } },
  /** VAL-7.0 only (BLKSNAP_MODIFICATION). */
  blksnap_snapshot_append_storage: { size: 40, fields: { id: 0, devpath: 16, count: 24, ranges: 32 } },
  blksnap_mod: { size: 40, fields: { compatibility_flags: 0, name: 8 } },
  /** VAL-7.0 bdevfilter.h: the device is named by a path pointer. */
  bdevfilter_name: { size: 40, fields: { devpath: 0, name: 8 } },
  bdevfilter_ctl: { size: 56, fields: { devpath: 0, name: 8, cmd: 40, optlen: 44, opt: 48 } },
  /** lk6.15 blk-filter.h */
  blkfilter_attach: { size: 48, fields: { name: 0, opt: 32, optlen: 40 } },
  blkfilter_detach: { size: 32, fields: { name: 0 } },
} as const;

function writeName(b: Buffer, offset: number, name: string): void {
  const bytes = Buffer.from(name, 'latin1');
  if (bytes.length > BLKFILTER_NAME_LENGTH) throw new BlksnapError('ENAMETOOLONG', `filter name longer than ${BLKFILTER_NAME_LENGTH} bytes`);
  bytes.copy(b, offset);
}

/** create with a path: `filename` is the user address of a NUL-terminated path. */
export function encodeSnapshotCreatePath(limitSectors: number, filename: bigint): Buffer {
  const l = DIALECT_LAYOUT.blksnap_snapshot_create_path;
  const b = Buffer.alloc(l.size);
  b.writeBigUInt64LE(BigInt(limitSectors), l.fields.diff_storage_limit_sect);
  b.writeBigUInt64LE(filename, l.fields.diff_storage_filename);
  return b;
}

export function encodeAppendStorage(id: string, devpath: bigint, count: number, ranges: bigint): Buffer {
  const l = DIALECT_LAYOUT.blksnap_snapshot_append_storage;
  const b = Buffer.alloc(l.size);
  encodeUuid(id).copy(b, l.fields.id);
  b.writeBigUInt64LE(devpath, l.fields.devpath);
  b.writeUInt32LE(count, l.fields.count);
  b.writeBigUInt64LE(ranges, l.fields.ranges);
  return b;
}

export function encodeBdevfilterName(devpath: bigint, name: string): Buffer {
  const l = DIALECT_LAYOUT.bdevfilter_name;
  const b = Buffer.alloc(l.size);
  b.writeBigUInt64LE(devpath, l.fields.devpath);
  writeName(b, l.fields.name, name);
  return b;
}

export interface RawBdevfilterCtl {
  devpath: bigint;
  name: string;
  cmd: number;
  optlen: number;
  opt: bigint;
}

export function encodeBdevfilterCtl(v: RawBdevfilterCtl): Buffer {
  const l = DIALECT_LAYOUT.bdevfilter_ctl;
  const b = Buffer.alloc(l.size);
  b.writeBigUInt64LE(v.devpath, l.fields.devpath);
  writeName(b, l.fields.name, v.name);
  b.writeUInt32LE(v.cmd, l.fields.cmd);
  b.writeUInt32LE(v.optlen, l.fields.optlen);
  b.writeBigUInt64LE(v.opt, l.fields.opt);
  return b;
}

/** lk6.15 attach without options (opt 0, optlen 0). */
export function encodeBlkfilterAttach(name: string): Buffer {
  const b = Buffer.alloc(DIALECT_LAYOUT.blkfilter_attach.size);
  writeName(b, DIALECT_LAYOUT.blkfilter_attach.fields.name, name);
  return b;
}

export function encodeBlkfilterDetach(name: string): Buffer {
  const b = Buffer.alloc(DIALECT_LAYOUT.blkfilter_detach.size);
  writeName(b, DIALECT_LAYOUT.blkfilter_detach.fields.name, name);
  return b;
}
