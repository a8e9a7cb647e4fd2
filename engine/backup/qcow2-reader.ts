/**
 * qcow2 reader (versions 2 and 3) with its backing chain: reads any byte range of the
 * guest image. Unallocated clusters read from the backing file (zeroes past its end,
 * or with no backing file), zero-flagged clusters as zeroes, compressed clusters are
 * inflated (raw deflate, or zstd with compression type 1). Read-only; usable as a
 * BlockDevice.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { promisify } from 'node:util';
import { inflateRaw } from 'node:zlib';
import { BlksnapError } from '../abi/errno.js';
import { closeFd, readFull } from '../core/file-io.js';
import { RawImage, ReadOnlyImage, checkImageRange, openReadOnly } from './image-source.js';
import type { ImageSource } from './image-source.js';
import {
  EXT_BACKING_FORMAT, INCOMPAT_COMPRESSION_TYPE, INCOMPAT_CORRUPT, INCOMPAT_DIRTY, INCOMPAT_EXTENDED_L2,
  INCOMPAT_EXTERNAL_DATA, QCOW2_MAGIC, compressedShift, parseExtensions, parseHeader,
} from './qcow2-format.js';
import type { BackingFormat, Qcow2Header } from './qcow2-format.js';
import { loadZstd, zstdDecompress } from './zstd.js';

const inflateRawAsync = promisify(inflateRaw);
const TWO32 = 2 ** 32;
const MAX_CHAIN_DEPTH = 256;
const L2_CACHE_TABLES = 64;
const KNOWN_INCOMPAT = INCOMPAT_DIRTY | INCOMPAT_COMPRESSION_TYPE;

/** Opens an image file, qcow2 (with its backing chain) or raw, by its content or the given format. */
export async function openImage(path: string, format?: BackingFormat, depth = 0): Promise<ImageSource & ReadOnlyImage> {
  if (depth > MAX_CHAIN_DEPTH) throw new BlksnapError('ELOOP', `${path}: the backing chain is longer than ${MAX_CHAIN_DEPTH} images (a loop?)`);
  const kind = format ?? (await probeFormat(path));
  return kind === 'qcow2' ? Qcow2Image.open(path, depth) : RawImage.open(path);
}

async function probeFormat(path: string): Promise<BackingFormat> {
  const fd = await openReadOnly(path);
  try {
    const head = Buffer.alloc(4);
    await readFull(fd, head, 0, 4, 0);
    return head.readUInt32BE(0) === QCOW2_MAGIC ? 'qcow2' : 'raw';
  } finally {
    await closeFd(fd);
  }
}

type Piece =
  | { kind: 'data'; host: number; at: number; len: number }
  | { kind: 'zero'; at: number; len: number }
  | { kind: 'backing'; guest: number; at: number; len: number }
  | { kind: 'compressed'; entry: bigint; within: number; at: number; len: number };

export class Qcow2Image extends ReadOnlyImage {
  readonly virtualSize: number;
  readonly physicalBlockSize: number;
  readonly clusterSize: number;
  /** The backing file name as stored in the header ("" when there is none). */
  readonly backingName: string;
  readonly backingFormat: BackingFormat | undefined;
  private readonly l2Entries: number;
  private readonly l2Cache = new Map<number, Buffer>();
  private lastInflated: { entry: bigint; data: Buffer } | null = null;

  private constructor(
    readonly path: string,
    private fd: number | null,
    readonly header: Qcow2Header,
    private readonly l1: Buffer,
    readonly backing: (ImageSource & ReadOnlyImage) | null,
    backingName: string,
    backingFormat: BackingFormat | undefined,
  ) {
    super();
    this.virtualSize = header.virtualSize;
    this.clusterSize = 2 ** header.clusterBits;
    this.physicalBlockSize = Math.min(this.clusterSize, 65536);
    this.l2Entries = this.clusterSize / 8;
    this.backingName = backingName;
    this.backingFormat = backingFormat;
  }

  static async open(path: string, depth = 0): Promise<Qcow2Image> {
    const fd = await openReadOnly(path);
    let backing: (ImageSource & ReadOnlyImage) | null = null;
    try {
      const first = Buffer.alloc(512);
      await readFull(fd, first, 0, 512, 0);
      const h = parseHeader(first, path);
      if (h.clusterBits < 9 || h.clusterBits > 21) throw new BlksnapError('EINVAL', `${path}: qcow2 cluster bits ${h.clusterBits} are out of range`);
      const cs = 2 ** h.clusterBits;
      if (h.cryptMethod !== 0) throw new BlksnapError('EOPNOTSUPP', `${path} is an encrypted qcow2 image; encryption is not supported`);
      const unknown = h.incompatibleFeatures & ~KNOWN_INCOMPAT;
      if (unknown & INCOMPAT_CORRUPT) throw new BlksnapError('EIO', `${path} is marked corrupt by qemu; repair it with qemu-img check -r all`);
      if (unknown & INCOMPAT_EXTERNAL_DATA) throw new BlksnapError('EOPNOTSUPP', `${path} keeps its data in an external file; that is not supported`);
      if (unknown & INCOMPAT_EXTENDED_L2) throw new BlksnapError('EOPNOTSUPP', `${path} uses extended L2 entries (subclusters); that is not supported`);
      if (unknown !== 0n) throw new BlksnapError('EOPNOTSUPP', `${path} uses unknown incompatible qcow2 features (0x${unknown.toString(16)})`);
      if (h.compressionType > 1) throw new BlksnapError('EOPNOTSUPP', `${path} uses compression type ${h.compressionType}; only zlib (deflate) and zstd compressed qcow2 images can be read`);
      if (h.compressionType === 1) await loadZstd();
      const cluster0 = Buffer.alloc(cs);
      await readFull(fd, cluster0, 0, cs, 0);
      let backingFormat: BackingFormat | undefined;
      for (const ext of h.version === 3 ? parseExtensions(cluster0, h.headerLength, path) : []) {
        if (ext.type === EXT_BACKING_FORMAT) {
          const f = ext.data.toString('latin1');
          if (f !== 'raw' && f !== 'qcow2') throw new BlksnapError('EOPNOTSUPP', `${path}: backing file format "${f}" is not supported (raw or qcow2)`);
          backingFormat = f;
        }
      }
      let backingName = '';
      if (h.backingFileOffset !== 0 && h.backingFileSize > 0) {
        const name = Buffer.alloc(h.backingFileSize);
        await readFull(fd, name, 0, h.backingFileSize, h.backingFileOffset);
        backingName = name.toString('utf8');
        const backingPath = isAbsolute(backingName) ? backingName : resolve(dirname(path), backingName);
        backing = await openImage(backingPath, backingFormat, depth + 1).catch((err: unknown) => {
          const why = err instanceof Error ? err.message : String(err);
          throw new BlksnapError('ENOENT', `${path}: its backing file ${backingPath} cannot be opened (${why})`);
        });
      }
      const l1 = Buffer.alloc(h.l1Size * 8);
      await readFull(fd, l1, 0, l1.length, h.l1TableOffset);
      return new Qcow2Image(path, fd, h, l1, backing, backingName, backingFormat);
    } catch (err) {
      await closeFd(fd);
      if (backing) await backing.close();
      throw err;
    }
  }

  /** The whole chain, this image first. */
  chain(): ImageSource[] {
    const out: ImageSource[] = [this];
    let at = this.backing;
    while (at) {
      out.push(at);
      at = at instanceof Qcow2Image ? at.backing : null;
    }
    return out;
  }

  private async l2Table(hostOffset: number): Promise<Buffer> {
    const cached = this.l2Cache.get(hostOffset);
    if (cached) return cached;
    const t = Buffer.alloc(this.clusterSize);
    await readFull(this.requireFd(), t, 0, t.length, hostOffset);
    if (this.l2Cache.size >= L2_CACHE_TABLES) this.l2Cache.delete(this.l2Cache.keys().next().value!);
    this.l2Cache.set(hostOffset, t);
    return t;
  }

  async readInto(offset: number, length: number, target: Buffer, targetOffset: number): Promise<void> {
    checkImageRange(this, offset, length);
    const cs = this.clusterSize;
    const pieces: Piece[] = [];
    const push = (p: Piece): void => {
      const last = pieces[pieces.length - 1];
      if (last && last.kind === p.kind && last.at + last.len === p.at) {
        if (p.kind === 'zero') return void (last.len += p.len);
        if (p.kind === 'data' && last.kind === 'data' && last.host + last.len === p.host) return void (last.len += p.len);
        if (p.kind === 'backing' && last.kind === 'backing' && last.guest + last.len === p.guest) return void (last.len += p.len);
      }
      pieces.push(p);
    };
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const within = pos % cs;
      const len = Math.min(cs - within, end - pos);
      const at = targetOffset + (pos - offset);
      const guest = Math.floor(pos / cs);
      const l1Index = Math.floor(guest / this.l2Entries);
      let hi = 0;
      let lo = 0;
      if (l1Index < this.header.l1Size) {
        const l2Off = (this.l1.readUInt32BE(l1Index * 8) & 0x00ffffff) * TWO32 + (this.l1.readUInt32BE(l1Index * 8 + 4) & 0xfffffe00);
        if (l2Off !== 0) {
          const t = await this.l2Table(l2Off);
          hi = t.readUInt32BE((guest % this.l2Entries) * 8);
          lo = t.readUInt32BE((guest % this.l2Entries) * 8 + 4);
        }
      }
      if (hi & 0x40000000) {
        push({ kind: 'compressed', entry: (BigInt(hi) << 32n) | BigInt(lo), within, at, len });
      } else {
        const host = (hi & 0x00ffffff) * TWO32 + ((lo & 0xfffffe00) >>> 0);
        const zero = this.header.version === 3 && (lo & 1) === 1;
        if (zero) push({ kind: 'zero', at, len });
        else if (host !== 0) push({ kind: 'data', host: host + within, at, len });
        else push({ kind: 'backing', guest: pos, at, len });
      }
      pos += len;
    }
    await Promise.all(pieces.map((p) => this.fill(p, target)));
  }

  private async fill(p: Piece, target: Buffer): Promise<void> {
    switch (p.kind) {
      case 'zero':
        target.fill(0, p.at, p.at + p.len);
        return;
      case 'data':
        await readFull(this.requireFd(), target, p.at, p.len, p.host);
        return;
      case 'backing': {
        const b = this.backing;
        const inBacking = b ? Math.max(0, Math.min(p.len, b.virtualSize - p.guest)) : 0;
        if (b && inBacking > 0) await b.readInto(p.guest, inBacking, target, p.at);
        target.fill(0, p.at + inBacking, p.at + p.len);
        return;
      }
      case 'compressed': {
        const data = await this.inflate(p.entry);
        data.copy(target, p.at, p.within, p.within + p.len);
        return;
      }
    }
  }

  private async inflate(entry: bigint): Promise<Buffer> {
    if (this.lastInflated?.entry === entry) return this.lastInflated.data;
    const shift = BigInt(compressedShift(this.header.clusterBits));
    const offset = Number(entry & ((1n << shift) - 1n));
    const extra = Number((entry >> shift) & ((1n << (62n - shift)) - 1n));
    const bytes = (extra + 1) * 512 - (offset % 512);
    const packed = Buffer.alloc(bytes);
    await readFull(this.requireFd(), packed, 0, bytes, offset);
    let data: Buffer;
    try {
      data =
        this.header.compressionType === 1
          ? zstdDecompress(packed, this.clusterSize)
          : await inflateRawAsync(packed, { finishFlush: 2 /* Z_SYNC_FLUSH: the data may end with padding */ });
    } catch (err) {
      throw new BlksnapError('EIO', `${this.path}: a compressed cluster at ${offset} cannot be inflated (${(err as Error).message})`);
    }
    if (data.length < this.clusterSize) {
      throw new BlksnapError('EIO', `${this.path}: a compressed cluster at ${offset} inflates to ${data.length} bytes, not ${this.clusterSize}`);
    }
    this.lastInflated = { entry, data };
    return data;
  }

  private requireFd(): number {
    if (this.fd === null) throw new BlksnapError('EBADF', `${this.path} is closed`);
    return this.fd;
  }

  async close(): Promise<void> {
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) await closeFd(fd);
    if (this.backing) await this.backing.close();
  }
}
