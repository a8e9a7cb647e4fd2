/**
 * Byte-exact encode/decode of the blksnap v6 uapi structs (seed 000,
 * include/uapi/linux/blksnap.h) and of the block-filter structs
 * (seed 001, include/uapi/linux/blk-filter.h), x86_64 little-endian with natural
 * alignment. Every size and offset is a constant in LAYOUT; the ABI test
 * compiles the C header and compares them.
 */
import { BlksnapError } from '../abi/errno.js';

export const UUID_SIZE = 16;
export const IMAGE_DISK_NAME_LEN = 32;
export const BLKFILTER_NAME_LENGTH = 32;
/** #define BLKSNAP_CTL: the misc device name (/dev/blksnap-control). */
export const BLKSNAP_CTL = 'blksnap-control';
export const BLKSNAP_IMAGE_NAME = 'blksnap-image';
/** The name the blksnap tracker registers as a block-device filter. */
export const BLKSNAP_FILTER_NAME = 'blksnap';
export const SNAPSHOT_EVENT_DATA_SIZE = 4096 - 32;

/** enum blkfilter_ctl_blksnap */
export const BLKFILTER_CTL_BLKSNAP = {
  cbtinfo: 0,
  cbtmap: 1,
  cbtdirty: 2,
  snapshotadd: 3,
  snapshotinfo: 4,
} as const;

/**
 * enum blksnap_event_codes. v6 defines corrupted = 0; newer module versions add
 * no_space = 1 (data: __u64 requested_nr_sect, the layout of v5's low_free_space).
 */
export const BLKSNAP_EVENT_CODE = {
  corrupted: 0,
  no_space: 1,
} as const;

/** sizeof and offsetof of every struct and field, by their C names. */
export const LAYOUT = {
  blksnap_uuid: { size: 16, fields: { b: 0 } },
  blksnap_cbtinfo: {
    size: 40,
    fields: { device_capacity: 0, block_size: 8, block_count: 12, generation_id: 16, changes_number: 32 },
  },
  blksnap_cbtmap: { size: 16, fields: { offset: 0, length: 4, buffer: 8 } },
  blksnap_sectors: { size: 16, fields: { offset: 0, count: 8 } },
  blksnap_cbtdirty: { size: 16, fields: { count: 0, dirty_sectors: 8 } },
  blksnap_snapshotadd: { size: 16, fields: { id: 0 } },
  blksnap_snapshotinfo: { size: 36, fields: { error_code: 0, image: 4 } },
  blksnap_version: { size: 8, fields: { major: 0, minor: 2, revision: 4, build: 6 } },
  blksnap_snapshot_create: { size: 32, fields: { diff_storage_limit_sect: 0, diff_storage_fd: 8, id: 12 } },
  blksnap_snapshot_collect: { size: 16, fields: { count: 0, ids: 8 } },
  blksnap_snapshot_event: { size: 4096, fields: { id: 0, timeout_ms: 16, code: 20, time_label: 24, data: 32 } },
  blksnap_event_corrupted: { size: 12, fields: { dev_id_mj: 0, dev_id_mn: 4, err_code: 8 } },
  blksnap_event_no_space: { size: 8, fields: { requested_nr_sect: 0 } },
  blkfilter_name: { size: 32, fields: { name: 0 } },
  blkfilter_ctl: { size: 48, fields: { name: 0, cmd: 32, optlen: 36, opt: 40 } },
} as const;

export type StructName = keyof typeof LAYOUT;

const U32_MAX = 0xffff_ffff;
const U64_MAX = (1n << 64n) - 1n;

function need(buf: Uint8Array, struct: StructName, offset = 0): Buffer {
  const size = LAYOUT[struct].size;
  if (buf.length - offset < size) {
    throw new BlksnapError('EFAULT', `${struct}: buffer of ${buf.length - offset} bytes, ${size} needed`);
  }
  return Buffer.from(buf.buffer, buf.byteOffset + offset, size);
}

function checkU32(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > U32_MAX) {
    throw new BlksnapError('EINVAL', `${what} must be an unsigned 32-bit integer, got ${value}`);
  }
  return value;
}

function toU64(value: number | bigint, what: string): bigint {
  if (typeof value === 'number' && (!Number.isSafeInteger(value) || value < 0)) {
    throw new BlksnapError('EINVAL', `${what} must be a non-negative integer, got ${value}`);
  }
  const big = BigInt(value);
  if (big < 0n || big > U64_MAX) throw new BlksnapError('EINVAL', `${what} out of the u64 range`);
  return big;
}

/** A u64 that must fit a JS number (sizes, sector counts). */
function u64ToNumber(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new BlksnapError('ERANGE', `${what} ${value} does not fit a safe integer`);
  }
  return Number(value);
}

/** A NUL-terminated C string from a fixed-size byte array. */
function readCString(buf: Buffer, offset: number, length: number): string {
  const bytes = buf.subarray(offset, offset + length);
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? length : end).toString('latin1');
}

function writeCString(buf: Buffer, offset: number, length: number, value: string, what: string): void {
  const bytes = Buffer.from(value, 'latin1');
  if (bytes.length > length) throw new BlksnapError('ENAMETOOLONG', `${what} longer than ${length} bytes`);
  buf.fill(0, offset, offset + length);
  bytes.copy(buf, offset);
}

// ---- struct blksnap_uuid ---------------------------------------------------

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID_RE.test(value);
}

/** The 16 bytes of a canonical UUID string, in string order (uuid_t is big-endian bytes). */
export function encodeUuid(id: string): Buffer {
  if (!UUID_RE.test(id)) throw new BlksnapError('EINVAL', `"${id}" is not a snapshot id (UUID)`);
  return Buffer.from(id.replace(/-/g, ''), 'hex');
}

export function decodeUuid(buf: Uint8Array, offset = 0): string {
  const b = need(buf, 'blksnap_uuid', offset);
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function writeUuid(buf: Buffer, offset: number, id: string): void {
  encodeUuid(id).copy(buf, offset);
}

// ---- struct blksnap_cbtinfo ------------------------------------------------

export interface RawCbtInfo {
  deviceCapacity: number;
  blockSize: number;
  blockCount: number;
  generationId: string;
  changesNumber: number;
}

export function encodeCbtInfo(v: RawCbtInfo): Buffer {
  const f = LAYOUT.blksnap_cbtinfo.fields;
  const b = Buffer.alloc(LAYOUT.blksnap_cbtinfo.size);
  b.writeBigUInt64LE(toU64(v.deviceCapacity, 'device_capacity'), f.device_capacity);
  b.writeUInt32LE(checkU32(v.blockSize, 'block_size'), f.block_size);
  b.writeUInt32LE(checkU32(v.blockCount, 'block_count'), f.block_count);
  writeUuid(b, f.generation_id, v.generationId);
  b.writeUInt8(v.changesNumber & 0xff, f.changes_number);
  return b;
}

export function decodeCbtInfo(buf: Uint8Array): RawCbtInfo {
  const f = LAYOUT.blksnap_cbtinfo.fields;
  const b = need(buf, 'blksnap_cbtinfo');
  return {
    deviceCapacity: u64ToNumber(b.readBigUInt64LE(f.device_capacity), 'device_capacity'),
    blockSize: b.readUInt32LE(f.block_size),
    blockCount: b.readUInt32LE(f.block_count),
    generationId: decodeUuid(b, f.generation_id),
    changesNumber: b.readUInt8(f.changes_number),
  };
}

// ---- struct blksnap_cbtmap -------------------------------------------------

export interface RawCbtMap {
  offset: number;
  length: number;
  /** User-space address of the output buffer. */
  buffer: bigint;
}

export function encodeCbtMap(v: RawCbtMap): Buffer {
  const f = LAYOUT.blksnap_cbtmap.fields;
  const b = Buffer.alloc(LAYOUT.blksnap_cbtmap.size);
  b.writeUInt32LE(checkU32(v.offset, 'offset'), f.offset);
  b.writeUInt32LE(checkU32(v.length, 'length'), f.length);
  b.writeBigUInt64LE(toU64(v.buffer, 'buffer'), f.buffer);
  return b;
}

export function decodeCbtMap(buf: Uint8Array): RawCbtMap {
  const f = LAYOUT.blksnap_cbtmap.fields;
  const b = need(buf, 'blksnap_cbtmap');
  return { offset: b.readUInt32LE(f.offset), length: b.readUInt32LE(f.length), buffer: b.readBigUInt64LE(f.buffer) };
}

// ---- struct blksnap_sectors ------------------------------------------------

export interface RawSectors {
  offset: number;
  count: number;
}

export function encodeSectors(v: RawSectors): Buffer {
  const f = LAYOUT.blksnap_sectors.fields;
  const b = Buffer.alloc(LAYOUT.blksnap_sectors.size);
  b.writeBigUInt64LE(toU64(v.offset, 'offset'), f.offset);
  b.writeBigUInt64LE(toU64(v.count, 'count'), f.count);
  return b;
}

export function decodeSectors(buf: Uint8Array, offset = 0): RawSectors {
  const f = LAYOUT.blksnap_sectors.fields;
  const b = need(buf, 'blksnap_sectors', offset);
  return {
    offset: u64ToNumber(b.readBigUInt64LE(f.offset), 'offset'),
    count: u64ToNumber(b.readBigUInt64LE(f.count), 'count'),
  };
}

// ---- struct blksnap_cbtdirty -----------------------------------------------

export interface RawCbtDirty {
  count: number;
  /** User-space address of an array of struct blksnap_sectors. */
  dirtySectors: bigint;
}

export function encodeCbtDirty(v: RawCbtDirty): Buffer {
  const f = LAYOUT.blksnap_cbtdirty.fields;
  const b = Buffer.alloc(LAYOUT.blksnap_cbtdirty.size);
  b.writeUInt32LE(checkU32(v.count, 'count'), f.count);
  b.writeBigUInt64LE(toU64(v.dirtySectors, 'dirty_sectors'), f.dirty_sectors);
  return b;
}

export function decodeCbtDirty(buf: Uint8Array): RawCbtDirty {
  const f = LAYOUT.blksnap_cbtdirty.fields;
  const b = need(buf, 'blksnap_cbtdirty');
  return { count: b.readUInt32LE(f.count), dirtySectors: b.readBigUInt64LE(f.dirty_sectors) };
}

// ---- struct blksnap_snapshotadd --------------------------------------------

export function encodeSnapshotAdd(id: string): Buffer {
  const b = Buffer.alloc(LAYOUT.blksnap_snapshotadd.size);
  writeUuid(b, LAYOUT.blksnap_snapshotadd.fields.id, id);
  return b;
}

export function decodeSnapshotAdd(buf: Uint8Array): string {
  return decodeUuid(need(buf, 'blksnap_snapshotadd'), LAYOUT.blksnap_snapshotadd.fields.id);
}

// ---- struct blksnap_snapshotinfo -------------------------------------------

export interface RawSnapshotInfo {
  errorCode: number;
  image: string;
}

export function encodeSnapshotInfo(v: RawSnapshotInfo): Buffer {
  const f = LAYOUT.blksnap_snapshotinfo.fields;
  const b = Buffer.alloc(LAYOUT.blksnap_snapshotinfo.size);
  b.writeInt32LE(v.errorCode, f.error_code);
  writeCString(b, f.image, IMAGE_DISK_NAME_LEN, v.image, 'image');
  return b;
}

export function decodeSnapshotInfo(buf: Uint8Array): RawSnapshotInfo {
  const f = LAYOUT.blksnap_snapshotinfo.fields;
  const b = need(buf, 'blksnap_snapshotinfo');
  return { errorCode: b.readInt32LE(f.error_code), image: readCString(b, f.image, IMAGE_DISK_NAME_LEN) };
}

// ---- struct blksnap_version ------------------------------------------------

export interface RawVersion {
  major: number;
  minor: number;
  revision: number;
  build: number;
}

export function encodeVersion(v: RawVersion): Buffer {
  const f = LAYOUT.blksnap_version.fields;
  const b = Buffer.alloc(LAYOUT.blksnap_version.size);
  b.writeUInt16LE(v.major, f.major);
  b.writeUInt16LE(v.minor, f.minor);
  b.writeUInt16LE(v.revision, f.revision);
  b.writeUInt16LE(v.build, f.build);
  return b;
}

export function decodeVersion(buf: Uint8Array): RawVersion {
  const f = LAYOUT.blksnap_version.fields;
  const b = need(buf, 'blksnap_version');
  return {
    major: b.readUInt16LE(f.major),
    minor: b.readUInt16LE(f.minor),
    revision: b.readUInt16LE(f.revision),
    build: b.readUInt16LE(f.build),
  };
}

// ---- struct blksnap_snapshot_create ----------------------------------------

export interface RawSnapshotCreate {
  diffStorageLimitSect: number;
  diffStorageFd: number;
  /** Output: the generated snapshot id (all zeroes on input). */
  id: string;
}

export const NIL_UUID = '00000000-0000-0000-0000-000000000000';

export function encodeSnapshotCreate(v: RawSnapshotCreate): Buffer {
  const f = LAYOUT.blksnap_snapshot_create.fields;
  const b = Buffer.alloc(LAYOUT.blksnap_snapshot_create.size);
  b.writeBigUInt64LE(toU64(v.diffStorageLimitSect, 'diff_storage_limit_sect'), f.diff_storage_limit_sect);
  b.writeUInt32LE(checkU32(v.diffStorageFd, 'diff_storage_fd'), f.diff_storage_fd);
  writeUuid(b, f.id, v.id);
  return b;
}

export function decodeSnapshotCreate(buf: Uint8Array): RawSnapshotCreate {
  const f = LAYOUT.blksnap_snapshot_create.fields;
  const b = need(buf, 'blksnap_snapshot_create');
  return {
    diffStorageLimitSect: u64ToNumber(b.readBigUInt64LE(f.diff_storage_limit_sect), 'diff_storage_limit_sect'),
    diffStorageFd: b.readUInt32LE(f.diff_storage_fd),
    id: decodeUuid(b, f.id),
  };
}

// ---- struct blksnap_snapshot_collect ---------------------------------------

export interface RawSnapshotCollect {
  count: number;
  /** User-space address of an array of struct blksnap_uuid, or 0n. */
  ids: bigint;
}

export function encodeSnapshotCollect(v: RawSnapshotCollect): Buffer {
  const f = LAYOUT.blksnap_snapshot_collect.fields;
  const b = Buffer.alloc(LAYOUT.blksnap_snapshot_collect.size);
  b.writeUInt32LE(checkU32(v.count, 'count'), f.count);
  b.writeBigUInt64LE(toU64(v.ids, 'ids'), f.ids);
  return b;
}

export function decodeSnapshotCollect(buf: Uint8Array): RawSnapshotCollect {
  const f = LAYOUT.blksnap_snapshot_collect.fields;
  const b = need(buf, 'blksnap_snapshot_collect');
  return { count: b.readUInt32LE(f.count), ids: b.readBigUInt64LE(f.ids) };
}

// ---- struct blksnap_snapshot_event -----------------------------------------

export interface RawSnapshotEvent {
  id: string;
  timeoutMs: number;
  code: number;
  /** ktime_get() of the event: CLOCK_MONOTONIC nanoseconds. */
  timeLabel: bigint;
  /** Up to SNAPSHOT_EVENT_DATA_SIZE bytes of event body. */
  data: Uint8Array;
}

export function encodeSnapshotEvent(v: RawSnapshotEvent): Buffer {
  const f = LAYOUT.blksnap_snapshot_event.fields;
  const b = Buffer.alloc(LAYOUT.blksnap_snapshot_event.size);
  writeUuid(b, f.id, v.id);
  b.writeUInt32LE(checkU32(v.timeoutMs, 'timeout_ms'), f.timeout_ms);
  b.writeUInt32LE(checkU32(v.code, 'code'), f.code);
  b.writeBigInt64LE(v.timeLabel, f.time_label);
  if (v.data.length > SNAPSHOT_EVENT_DATA_SIZE) throw new BlksnapError('ENOSPC', 'event data too large');
  b.set(v.data, f.data);
  return b;
}

export function decodeSnapshotEvent(buf: Uint8Array): RawSnapshotEvent {
  const f = LAYOUT.blksnap_snapshot_event.fields;
  const b = need(buf, 'blksnap_snapshot_event');
  return {
    id: decodeUuid(b, f.id),
    timeoutMs: b.readUInt32LE(f.timeout_ms),
    code: b.readUInt32LE(f.code),
    timeLabel: b.readBigInt64LE(f.time_label),
    data: Buffer.from(b.subarray(f.data, f.data + SNAPSHOT_EVENT_DATA_SIZE)),
  };
}

// ---- event bodies ----------------------------------------------------------

export interface RawEventCorrupted {
  devIdMj: number;
  devIdMn: number;
  errCode: number;
}

export function encodeEventCorrupted(v: RawEventCorrupted): Buffer {
  const f = LAYOUT.blksnap_event_corrupted.fields;
  const b = Buffer.alloc(LAYOUT.blksnap_event_corrupted.size);
  b.writeUInt32LE(checkU32(v.devIdMj, 'dev_id_mj'), f.dev_id_mj);
  b.writeUInt32LE(checkU32(v.devIdMn, 'dev_id_mn'), f.dev_id_mn);
  b.writeInt32LE(v.errCode, f.err_code);
  return b;
}

export function decodeEventCorrupted(buf: Uint8Array): RawEventCorrupted {
  const f = LAYOUT.blksnap_event_corrupted.fields;
  const b = need(buf, 'blksnap_event_corrupted');
  return { devIdMj: b.readUInt32LE(f.dev_id_mj), devIdMn: b.readUInt32LE(f.dev_id_mn), errCode: b.readInt32LE(f.err_code) };
}

export function encodeEventNoSpace(requestedNrSect: number): Buffer {
  const b = Buffer.alloc(LAYOUT.blksnap_event_no_space.size);
  b.writeBigUInt64LE(toU64(requestedNrSect, 'requested_nr_sect'), LAYOUT.blksnap_event_no_space.fields.requested_nr_sect);
  return b;
}

export function decodeEventNoSpace(buf: Uint8Array): number {
  const b = need(buf, 'blksnap_event_no_space');
  return u64ToNumber(b.readBigUInt64LE(LAYOUT.blksnap_event_no_space.fields.requested_nr_sect), 'requested_nr_sect');
}

// ---- struct blkfilter_name / blkfilter_ctl ---------------------------------

export function encodeBlkfilterName(name: string): Buffer {
  const b = Buffer.alloc(LAYOUT.blkfilter_name.size);
  writeCString(b, LAYOUT.blkfilter_name.fields.name, BLKFILTER_NAME_LENGTH, name, 'filter name');
  return b;
}

export function decodeBlkfilterName(buf: Uint8Array): string {
  return readCString(need(buf, 'blkfilter_name'), LAYOUT.blkfilter_name.fields.name, BLKFILTER_NAME_LENGTH);
}

export interface RawBlkfilterCtl {
  name: string;
  cmd: number;
  optlen: number;
  /** User-space address of the command's option struct. */
  opt: bigint;
}

export function encodeBlkfilterCtl(v: RawBlkfilterCtl): Buffer {
  const f = LAYOUT.blkfilter_ctl.fields;
  const b = Buffer.alloc(LAYOUT.blkfilter_ctl.size);
  writeCString(b, f.name, BLKFILTER_NAME_LENGTH, v.name, 'filter name');
  b.writeUInt32LE(checkU32(v.cmd, 'cmd'), f.cmd);
  b.writeUInt32LE(checkU32(v.optlen, 'optlen'), f.optlen);
  b.writeBigUInt64LE(toU64(v.opt, 'opt'), f.opt);
  return b;
}

export function decodeBlkfilterCtl(buf: Uint8Array): RawBlkfilterCtl {
  const f = LAYOUT.blkfilter_ctl.fields;
  const b = need(buf, 'blkfilter_ctl');
  return {
    name: readCString(b, f.name, BLKFILTER_NAME_LENGTH),
    cmd: b.readUInt32LE(f.cmd),
    optlen: b.readUInt32LE(f.optlen),
    opt: b.readBigUInt64LE(f.opt),
  };
}
