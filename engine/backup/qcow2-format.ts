/**
 * The parts of the qcow2 on-disk layout (qemu's docs/interop/qcow2.txt) that the
 * writer and the reader share: header fields, header extensions, table entry bits.
 * All numbers in a qcow2 file are big-endian.
 */
import { BlksnapError } from '../abi/errno.js';

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
/** Bytes of the version 3 header including the compression-type byte and its padding. */
export const V3_HEADER_LENGTH = 112;
export const V2_HEADER_LENGTH = 72;

export const EXT_END = 0x00000000;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_NAMES = 0x6803f857;

/** Incompatible feature bits. */
export const INCOMPAT_DIRTY = 1n << 0n;
export const INCOMPAT_CORRUPT = 1n << 1n;
export const INCOMPAT_EXTERNAL_DATA = 1n << 2n;
export const INCOMPAT_COMPRESSION_TYPE = 1n << 3n;
export const INCOMPAT_EXTENDED_L2 = 1n << 4n;

/** L1 / L2 entry bits. */
export const ENTRY_COPIED = 1n << 63n;
export const L2_COMPRESSED = 1n << 62n;
export const L2_ZERO = 1n;
/** Bits 9-55: a cluster-aligned host offset. */
export const OFFSET_MASK = 0x00fffffffffffe00n;

export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;
/** refcount_order 4: 16-bit refcounts (what qemu-img creates by default). */
export const REFCOUNT_ORDER = 4;
export const MAX_BACKING_NAME = 1023;

export type BackingFormat = 'raw' | 'qcow2';

export interface Qcow2Header {
  version: 2 | 3;
  backingFileOffset: number;
  backingFileSize: number;
  clusterBits: number;
  virtualSize: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  refcountOrder: number;
  headerLength: number;
  /** 0 = zlib (deflate), 1 = zstd. */
  compressionType: number;
}

/** Bit position where the sector count of a compressed cluster descriptor starts. */
export function compressedShift(clusterBits: number): number {
  return 62 - (clusterBits - 8);
}

function safe(value: bigint, what: string, file: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new BlksnapError('EINVAL', `${file}: ${what} ${value} is too large`);
  return Number(value);
}

/** Parses the fixed header at the start of a qcow2 file. */
export function parseHeader(buf: Buffer, file: string): Qcow2Header {
  if (buf.length < V2_HEADER_LENGTH || buf.readUInt32BE(0) !== QCOW2_MAGIC) {
    throw new BlksnapError('EINVAL', `${file} is not a qcow2 image (no qcow2 magic)`);
  }
  const version = buf.readUInt32BE(4);
  if (version !== 2 && version !== 3) {
    throw new BlksnapError('EOPNOTSUPP', `${file} is qcow2 version ${version}; only versions 2 and 3 are supported`);
  }
  const v3 = version === 3;
  const headerLength = v3 ? buf.readUInt32BE(100) : V2_HEADER_LENGTH;
  return {
    version,
    backingFileOffset: safe(buf.readBigUInt64BE(8), 'backing file offset', file),
    backingFileSize: buf.readUInt32BE(16),
    clusterBits: buf.readUInt32BE(20),
    virtualSize: safe(buf.readBigUInt64BE(24), 'virtual size', file),
    cryptMethod: buf.readUInt32BE(32),
    l1Size: buf.readUInt32BE(36),
    l1TableOffset: safe(buf.readBigUInt64BE(40), 'L1 table offset', file),
    refcountTableOffset: safe(buf.readBigUInt64BE(48), 'refcount table offset', file),
    refcountTableClusters: buf.readUInt32BE(56),
    nbSnapshots: buf.readUInt32BE(60),
    snapshotsOffset: safe(buf.readBigUInt64BE(64), 'snapshots offset', file),
    incompatibleFeatures: v3 ? buf.readBigUInt64BE(72) : 0n,
    compatibleFeatures: v3 ? buf.readBigUInt64BE(80) : 0n,
    autoclearFeatures: v3 ? buf.readBigUInt64BE(88) : 0n,
    refcountOrder: v3 ? buf.readUInt32BE(96) : REFCOUNT_ORDER,
    headerLength,
    compressionType: v3 && headerLength > 104 ? buf.readUInt8(104) : 0,
  };
}

/** Writes a version 3 header (V3_HEADER_LENGTH bytes) into buf at 0. */
export function writeHeader(buf: Buffer, h: Qcow2Header): void {
  buf.writeUInt32BE(QCOW2_MAGIC, 0);
  buf.writeUInt32BE(3, 4);
  buf.writeBigUInt64BE(BigInt(h.backingFileOffset), 8);
  buf.writeUInt32BE(h.backingFileSize, 16);
  buf.writeUInt32BE(h.clusterBits, 20);
  buf.writeBigUInt64BE(BigInt(h.virtualSize), 24);
  buf.writeUInt32BE(h.cryptMethod, 32);
  buf.writeUInt32BE(h.l1Size, 36);
  buf.writeBigUInt64BE(BigInt(h.l1TableOffset), 40);
  buf.writeBigUInt64BE(BigInt(h.refcountTableOffset), 48);
  buf.writeUInt32BE(h.refcountTableClusters, 56);
  buf.writeUInt32BE(h.nbSnapshots, 60);
  buf.writeBigUInt64BE(BigInt(h.snapshotsOffset), 64);
  buf.writeBigUInt64BE(h.incompatibleFeatures, 72);
  buf.writeBigUInt64BE(h.compatibleFeatures, 80);
  buf.writeBigUInt64BE(h.autoclearFeatures, 88);
  buf.writeUInt32BE(h.refcountOrder, 96);
  buf.writeUInt32BE(V3_HEADER_LENGTH, 100);
  buf.writeUInt8(h.compressionType, 104);
}

export interface HeaderExtension {
  type: number;
  data: Buffer;
}

/** Reads the header extensions that follow the header (up to the end marker). */
export function parseExtensions(cluster0: Buffer, headerLength: number, file: string): HeaderExtension[] {
  const out: HeaderExtension[] = [];
  let at = headerLength;
  while (at + 8 <= cluster0.length) {
    const type = cluster0.readUInt32BE(at);
    const length = cluster0.readUInt32BE(at + 4);
    if (type === EXT_END) return out;
    if (at + 8 + length > cluster0.length) break;
    out.push({ type, data: cluster0.subarray(at + 8, at + 8 + length) });
    at += 8 + Math.ceil(length / 8) * 8;
  }
  throw new BlksnapError('EINVAL', `${file}: the qcow2 header extensions run past the first cluster`);
}

/** Serialises header extensions followed by the end marker, each padded to 8 bytes. */
export function encodeExtensions(exts: HeaderExtension[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of exts) {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(e.type, 0);
    head.writeUInt32BE(e.data.length, 4);
    parts.push(head, e.data, Buffer.alloc((8 - (e.data.length % 8)) % 8));
  }
  parts.push(Buffer.alloc(8)); // end of extensions
  return Buffer.concat(parts);
}
