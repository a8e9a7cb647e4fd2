/**
 * Read-only images (a raw file, or a qcow2 chain from qcow2-reader.ts) behind one
 * interface, also usable as a read-only BlockDevice (what the NBD server exports).
 */
import { open as openCb } from 'node:fs';
import { stat } from 'node:fs/promises';
import { BlksnapError } from '../abi/errno.js';
import type { BlockDevice, BlockExtent } from '../core/block-device.js';
import { fileExtents } from '../core/file-extents.js';
import { closeFd, readFull } from '../core/file-io.js';
import { checkRange, checkTarget } from '../core/io-range.js';

export interface ImageSource {
  readonly path: string;
  /** Guest size in bytes. */
  readonly virtualSize: number;
  /** Any byte range inside the virtual size, into target[targetOffset, targetOffset+length). */
  readInto(offset: number, length: number, target: Buffer, targetOffset: number): Promise<void>;
  close(): Promise<void>;
}

export function openReadOnly(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    openCb(path, 'r', (err, fd) => (err ? reject(err) : resolve(fd)));
  });
}

/** Checks an unaligned byte range against an image's size. */
export function checkImageRange(source: ImageSource, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > source.virtualSize) {
    throw new BlksnapError('EINVAL', `${source.path}: range ${offset}+${length} is outside the image (${source.virtualSize} bytes)`);
  }
}

/** Reads a range of an image into a new buffer. */
export async function readImage(source: ImageSource, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  await source.readInto(offset, length, buf, 0);
  return buf;
}

/**
 * The read-only BlockDevice face of an image: 512-byte aligned reads; every write
 * is refused with EROFS.
 */
export abstract class ReadOnlyImage implements BlockDevice, ImageSource {
  abstract readonly path: string;
  abstract readonly virtualSize: number;
  readonly logicalBlockSize = 512;
  readonly readOnly = true;
  abstract readonly physicalBlockSize: number;
  abstract readInto(offset: number, length: number, target: Buffer, targetOffset: number): Promise<void>;
  abstract close(): Promise<void>;

  get name(): string {
    return this.path;
  }

  get capacity(): number {
    return this.virtualSize;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this.name, this.capacity, offset, length);
    return readImage(this, offset, length);
  }

  async readTo(offset: number, length: number, target: Buffer, targetOffset: number): Promise<void> {
    checkRange(this.name, this.capacity, offset, length);
    checkTarget(this.name, target, targetOffset, length);
    await this.readInto(offset, length, target, targetOffset);
  }

  private refuse(): Promise<never> {
    return Promise.reject(new BlksnapError('EROFS', `${this.path} is a backup image, opened read-only`));
  }

  write(_offset: number, _data: Uint8Array): Promise<void> {
    return this.refuse();
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  discard(_offset: number, _length: number): Promise<void> {
    return this.refuse();
  }
  writeZeroes(_offset: number, _length: number): Promise<void> {
    return this.refuse();
  }
}

/** A raw image file; bytes past the end of the file read as zeroes; extents() reports its holes. */
export class RawImage extends ReadOnlyImage {
  readonly physicalBlockSize = 4096;

  private constructor(
    readonly path: string,
    readonly virtualSize: number,
    private fd: number | null,
  ) {
    super();
  }

  static async open(path: string): Promise<RawImage> {
    const fd = await openReadOnly(path);
    try {
      const st = await stat(path);
      return new RawImage(path, st.size, fd);
    } catch (err) {
      await closeFd(fd);
      throw err;
    }
  }

  async readInto(offset: number, length: number, target: Buffer, targetOffset: number): Promise<void> {
    checkImageRange(this, offset, length);
    if (this.fd === null) throw new BlksnapError('EBADF', `${this.path} is closed`);
    await readFull(this.fd, target, targetOffset, length, offset);
  }

  /** Data and holes of the range, from the file's holes (SEEK_DATA/SEEK_HOLE). */
  async extents(offset: number, length: number): Promise<BlockExtent[]> {
    checkRange(this.name, this.capacity, offset, length);
    if (this.fd === null) throw new BlksnapError('EBADF', `${this.path} is closed`);
    return length === 0 ? [] : fileExtents(this.fd, offset, length, this.path);
  }

  async close(): Promise<void> {
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) await closeFd(fd);
  }
}
