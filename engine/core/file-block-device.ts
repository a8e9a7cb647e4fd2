/**
 * A BlockDevice backed by an image file or an opened block device (e.g. a loop
 * device). This is the raw device: no tracking, no copy-on-write. The engine wraps
 * it (engine-device.ts) so that writes go through the tracker.
 */
import * as fs from 'node:fs';
import { readFileSync } from 'node:fs';
import { BlksnapError } from '../abi/errno.js';
import { SECTOR_SIZE } from '../abi/types.js';
import type { BlockDevice, BlockExtent, LiveFileRange } from './block-device.js';
import { fileExtents } from './file-extents.js';
import { fromNodeError } from './errors.js';
import { closeFd, fdatasync, readFull, readvFull, total, writeFull, writevFull } from './file-io.js';
import { asBuffer, checkRange, checkTarget, zeroBuffer, ZERO_BUFFER_SIZE } from './io-range.js';
import { splitDevT } from '../abi/dev-t.js';
import { loopDevicesOver, whatHolds } from '../devices/device-holders.js';
import { lockImage } from './image-lock.js';
import { InlineWritePolicy, readNoWait } from './nowait-io.js';

export const LOGICAL_BLOCK_SIZE = 512;
export const PHYSICAL_BLOCK_SIZE = 4096;

export { splitDevT };

/** Capacity of a block device in bytes: /sys/dev/block/MAJ:MIN/size (in 512-byte sectors). */
export function blockDeviceCapacity(rdev: number, path: string): number {
  const { major, minor } = splitDevT(rdev);
  try {
    const sectors = Number(readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim());
    if (Number.isSafeInteger(sectors) && sectors >= 0) return sectors * SECTOR_SIZE;
  } catch {
    // fall through
  }
  throw new BlksnapError('EINVAL', `cannot determine the capacity of block device ${path}`);
}

export interface FileBlockDeviceInfo {
  isBlockDevice: boolean;
  /** st_rdev of a block device, st_dev of a regular file. */
  dev: number;
  ino: number;
  rdev: number;
}

export class FileBlockDevice implements BlockDevice {
  readonly logicalBlockSize = LOGICAL_BLOCK_SIZE;
  readonly physicalBlockSize = PHYSICAL_BLOCK_SIZE;
  readonly readOnly = false;
  private closed = false;
  /** When small writes may be done on the calling thread (nowait-io.ts). */
  readonly inlineWrites = new InlineWritePolicy();

  private constructor(
    readonly name: string,
    readonly path: string,
    readonly capacity: number,
    private readonly fd: number,
    readonly info: FileBlockDeviceInfo,
  ) {}

  /**
   * Opens an existing regular file or block device read-write, for as long as the
   * engine fronts it. Nothing else may write it meanwhile (EBUSY, naming what holds it):
   * - a block device is refused while it, one of its partitions or its whole disk is
   *   mounted, used as swap or held by a device-mapper/md device (device-holders.ts),
   *   and is opened with O_EXCL, which claims it exclusively: the kernel then refuses
   *   to mount it or stack anything on it until close();
   * - an image file that a loop device is attached to is refused (it is that device);
   * - every image is locked the way qemu locks its images (image-lock.ts), so a qemu
   *   writer, or another helper, cannot open it for writing, and an image that qemu
   *   holds for writing is refused.
   * The capacity must be a non-zero multiple of 512 (EINVAL).
   */
  static async open(openPath: string, name: string, path = openPath): Promise<FileBlockDevice> {
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(openPath);
    } catch (err) {
      throw fromNodeError(err, `cannot open ${path}`);
    }
    const isBlock = st.isBlockDevice();
    if (!isBlock && !st.isFile()) throw new BlksnapError('EINVAL', `${path} is neither a regular file nor a block device`);
    if (isBlock) await refuseIfHeld(path, st.rdev, []);
    else refuseIfLoopBacking(path, st);
    const flags = fs.constants.O_RDWR | (isBlock ? fs.constants.O_EXCL : 0);
    let fd: number;
    try {
      fd = await new Promise<number>((resolve, reject) => {
        fs.open(openPath, flags, (err, f) => (err ? reject(err) : resolve(f)));
      });
    } catch (err) {
      if (isBlock && (err as NodeJS.ErrnoException).code === 'EBUSY') {
        await refuseIfHeld(path, st.rdev, ['it is opened exclusively by another program']);
      }
      throw fromNodeError(err, `cannot open ${path}`);
    }
    try {
      const fst = fs.fstatSync(fd);
      if (isBlock ? fst.rdev !== st.rdev : fst.dev !== st.dev || fst.ino !== st.ino) {
        throw new BlksnapError('EAGAIN', `${path} was replaced while it was being opened; try again`);
      }
      const capacity = isBlock ? blockDeviceCapacity(fst.rdev, path) : fst.size;
      if (capacity <= 0 || capacity % SECTOR_SIZE !== 0) {
        throw new BlksnapError('EINVAL', `${path}: size ${capacity} is not a non-zero multiple of ${SECTOR_SIZE}`);
      }
      lockImage(fd, path);
      return new FileBlockDevice(name, path, capacity, fd, {
        isBlockDevice: isBlock,
        dev: fst.dev,
        ino: fst.ino,
        rdev: fst.rdev,
      });
    } catch (err) {
      fs.closeSync(fd);
      throw fromNodeError(err, `cannot open ${path}`);
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new BlksnapError('ENODEV', `${this.name}: the device is closed`);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.checkOpen();
    checkRange(this.name, this.capacity, offset, length);
    const buf = Buffer.allocUnsafe(length);
    await this.readInto(buf, 0, length, offset);
    return buf;
  }

  async readTo(offset: number, length: number, target: Buffer, targetOffset: number): Promise<void> {
    this.checkOpen();
    checkRange(this.name, this.capacity, offset, length);
    checkTarget(this.name, target, targetOffset, length);
    await this.readInto(target, targetOffset, length, offset);
  }

  readToNow(offset: number, length: number, target: Buffer, targetOffset: number): boolean {
    this.checkOpen();
    checkRange(this.name, this.capacity, offset, length);
    checkTarget(this.name, target, targetOffset, length);
    return readNoWait(this.fd, target, targetOffset, length, offset);
  }

  /** The device's bytes are its file's (an image file or a block device). */
  liveFileRange(offset: number, length: number): LiveFileRange | null {
    this.checkOpen();
    checkRange(this.name, this.capacity, offset, length);
    return { fd: this.fd, position: offset };
  }

  /**
   * The descriptor that in-kernel copies (copy_file_range) read from: the image
   * file's, or null for a block device (the call copies regular files only) and
   * once closed.
   */
  get copySourceFd(): number | null {
    return this.info.isBlockDevice || this.closed ? null : this.fd;
  }

  /** readToNow() without the checks (the caller checked; the device is open). */
  readNowUnchecked(buf: Buffer, off: number, len: number, pos: number): boolean {
    return readNoWait(this.fd, buf, off, len, pos);
  }

  /** Reads into buf[off, off+len) from device offset `pos` (already checked). */
  async readInto(buf: Buffer, off: number, len: number, pos: number): Promise<void> {
    try {
      await readFull(this.fd, buf, off, len, pos);
    } catch (err) {
      throw fromNodeError(err, `${this.name}: read failed`);
    }
  }

  /**
   * Data and holes of the range: from the file's holes for an image file
   * (SEEK_DATA/SEEK_HOLE); a block device reports all data.
   */
  async extents(offset: number, length: number, maxRuns?: number): Promise<BlockExtent[]> {
    return this.extentsNow(offset, length, maxRuns);
  }

  /** extents(), synchronously (lseek does not wait for the data). */
  extentsNow(offset: number, length: number, maxRuns?: number): BlockExtent[] {
    this.checkOpen();
    checkRange(this.name, this.capacity, offset, length);
    if (this.info.isBlockDevice || length === 0) return length === 0 ? [] : [{ offset, length, hole: false }];
    return fileExtents(this.fd, offset, length, this.name, maxRuns);
  }

  /** Reads several buffers back to back from `pos` (already checked). */
  async readvInto(bufs: Buffer[], pos: number): Promise<void> {
    try {
      await readvFull(this.fd, bufs, pos);
    } catch (err) {
      throw fromNodeError(err, `${this.name}: read failed`);
    }
  }

  async write(offset: number, data: Uint8Array, options?: { fua?: boolean }): Promise<void> {
    this.checkOpen();
    checkRange(this.name, this.capacity, offset, data.byteLength);
    await this.writeUnchecked(offset, asBuffer(data), options?.fua === true);
  }

  writeNow(offset: number, data: readonly Buffer[]): boolean {
    this.checkOpen();
    const length = total(data);
    checkRange(this.name, this.capacity, offset, length);
    if (!this.inlineWrites.allows(length)) return false;
    this.writeNowUnchecked(offset, data);
    return true;
  }

  /** An inline write the caller checked and the policy allowed (inlineWrites.allows). */
  writeNowUnchecked(offset: number, bufs: readonly Buffer[]): void {
    try {
      this.inlineWrites.write(this.fd, bufs, offset);
    } catch (err) {
      throw fromNodeError(err, `${this.name}: write failed`);
    }
  }

  async writev(offset: number, data: readonly Buffer[], options?: { fua?: boolean }): Promise<void> {
    this.checkOpen();
    checkRange(this.name, this.capacity, offset, total(data));
    await this.writevUnchecked(offset, data, options?.fua === true);
  }

  /** writev() without the range check (the caller checked). */
  async writevUnchecked(offset: number, bufs: readonly Buffer[], fua: boolean): Promise<void> {
    try {
      await writevFull(this.fd, bufs, offset);
      if (fua) await fdatasync(this.fd);
    } catch (err) {
      throw fromNodeError(err, `${this.name}: write failed`);
    }
  }

  /** Writes without the range check (the caller checked). */
  async writeUnchecked(offset: number, buf: Buffer, fua: boolean): Promise<void> {
    try {
      await writeFull(this.fd, buf, 0, buf.length, offset);
      if (fua) await fdatasync(this.fd);
    } catch (err) {
      throw fromNodeError(err, `${this.name}: write failed`);
    }
  }

  async flush(): Promise<void> {
    this.checkOpen();
    try {
      await fdatasync(this.fd);
    } catch (err) {
      throw fromNodeError(err, `${this.name}: flush failed`);
    }
  }

  async discard(offset: number, length: number): Promise<void> {
    await this.writeZeroes(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkOpen();
    checkRange(this.name, this.capacity, offset, length);
    await this.writeZeroesUnchecked(offset, length);
  }

  async writeZeroesUnchecked(offset: number, length: number): Promise<void> {
    const z = zeroBuffer();
    try {
      for (let done = 0; done < length; done += ZERO_BUFFER_SIZE) {
        const n = Math.min(ZERO_BUFFER_SIZE, length - done);
        await writeFull(this.fd, z, 0, n, offset + done);
      }
    } catch (err) {
      throw fromNodeError(err, `${this.name}: write failed`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await closeFd(this.fd);
  }
}

/**
 * EBUSY naming what holds the block device `rdev` (mounts, swap, holders, of it, its
 * partitions or its whole disk); `otherwise` is said when none is found but the caller
 * knows it is busy. Returns when it is free and `otherwise` is empty.
 */
async function refuseIfHeld(path: string, rdev: number, otherwise: string[]): Promise<void> {
  const { major, minor } = splitDevT(rdev);
  const uses = await whatHolds(major, minor);
  const reasons = uses.length > 0 ? uses : otherwise;
  if (reasons.length === 0) return;
  throw new BlksnapError('EBUSY', `cannot front ${path}: ${reasons.join('; ')}; the engine fronts only a device nothing else uses`);
}

/** EBUSY when a loop device reads the file (`losetup`): writing it would write under that device. */
function refuseIfLoopBacking(path: string, st: fs.Stats): void {
  const loops = loopDevicesOver(st.dev, st.ino);
  if (loops.length === 0) return;
  const names = loops.map((l) => `/dev/${l}`).join(', ');
  throw new BlksnapError(
    'EBUSY',
    `cannot front ${path}: it is the backing file of ${names}; front ${loops.length === 1 ? 'that device' : 'one of those devices'} instead, or detach it (losetup -d)`,
  );
}
