/**
 * A BlockDevice over an image file (or a block device node), for tests and the
 * NBD bench: positional reads and writes on one file handle, fdatasync for
 * flush and FUA, zero writes for discard and write-zeroes.
 */
import { close, fdatasync, open, read, stat, write } from 'node:fs';
import { promisify } from 'node:util';
import { BlksnapError } from '../../engine/abi/errno.js';
import type { BlockDevice } from '../../engine/core/block-device.js';

const openFile = promisify(open);
const closeFile = promisify(close);
const statFile = promisify(stat);
const syncFile = promisify(fdatasync);

// The callback API (one libuv request each) is cheaper per call than FileHandle.
function readAt(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    read(fd, buffer, offset, length, position, (err, n) => (err === null ? resolve(n) : reject(err))),
  );
}

function writeAt(fd: number, data: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    write(fd, data, offset, length, position, (err, n) => (err === null ? resolve(n) : reject(err))),
  );
}

const SECTOR = 512;
const ZERO_CHUNK = Buffer.alloc(1024 * 1024);

export class FileDevice implements BlockDevice {
  readonly logicalBlockSize = SECTOR;
  readonly physicalBlockSize = 4096;

  private constructor(
    readonly name: string,
    readonly capacity: number,
    readonly readOnly: boolean,
    private readonly fd: number,
  ) {}

  static async open(path: string, options: { name: string; readOnly?: boolean }): Promise<FileDevice> {
    const readOnly = options.readOnly ?? false;
    const size = (await statFile(path)).size;
    const fd = await openFile(path, readOnly ? 'r' : 'r+');
    return new FileDevice(options.name, size - (size % SECTOR), readOnly, fd);
  }

  async close(): Promise<void> {
    await closeFile(this.fd);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.check(offset, length, false);
    const buffer = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const bytesRead = await readAt(this.fd, buffer, done, length - done, offset + done);
      if (bytesRead === 0) {
        buffer.fill(0, done);
        break;
      }
      done += bytesRead;
    }
    return buffer;
  }

  async write(offset: number, data: Uint8Array, options?: { fua?: boolean }): Promise<void> {
    this.check(offset, data.length, true);
    let done = 0;
    while (done < data.length) {
      const bytesWritten = await writeAt(this.fd, data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
    if (options?.fua === true) await syncFile(this.fd);
  }

  async flush(): Promise<void> {
    await syncFile(this.fd);
  }

  discard(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.check(offset, length, true);
    let done = 0;
    while (done < length) {
      const n = Math.min(ZERO_CHUNK.length, length - done);
      await this.write(offset + done, ZERO_CHUNK.subarray(0, n));
      done += n;
    }
  }

  private check(offset: number, length: number, writing: boolean): void {
    if (offset % SECTOR !== 0 || length % SECTOR !== 0 || offset < 0 || offset + length > this.capacity) {
      throw new BlksnapError('EINVAL', `I/O of ${length} bytes at ${offset} is unaligned or out of range`);
    }
    if (writing && this.readOnly) throw new BlksnapError('EROFS', `${this.name} is read-only`);
  }
}
