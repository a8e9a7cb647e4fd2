/**
 * An in-memory BlockDevice for tests, with the checks of the BlockDevice
 * contract (EINVAL for unaligned or out-of-range I/O, EROFS when read-only) and
 * hooks to inject errors and delays.
 */
import { BlksnapError } from '../../engine/abi/errno.js';
import type { ErrnoName } from '../../engine/abi/errno.js';
import type { BlockDevice } from '../../engine/core/block-device.js';

export type MemoryOp = 'read' | 'write' | 'flush' | 'discard' | 'writeZeroes';

export interface MemoryDeviceOptions {
  name: string;
  capacity: number;
  readOnly?: boolean;
  /** Initial content (copied; shorter is zero-padded). */
  content?: Uint8Array;
  /** Return an errno name to make that operation fail. */
  failWith?: (op: MemoryOp, offset: number, length: number) => ErrnoName | undefined;
  /** Milliseconds to wait before completing an operation. */
  delayMs?: (op: MemoryOp, offset: number, length: number) => number;
  /** A promise the operation waits for before completing (undefined: no wait). */
  gate?: (op: MemoryOp, offset: number, length: number) => Promise<void> | undefined;
}

const SECTOR = 512;

export class MemoryDevice implements BlockDevice {
  readonly name: string;
  readonly capacity: number;
  readonly logicalBlockSize = SECTOR;
  readonly physicalBlockSize = 4096;
  readonly readOnly: boolean;
  /** The device's bytes (tests may inspect them). */
  readonly data: Buffer;
  /** Operations seen, in completion order (op, flags). */
  readonly log: { op: MemoryOp; offset: number; length: number; fua: boolean }[] = [];
  flushes = 0;
  /** Operations inside the device now, and the most seen at once. */
  active = 0;
  maxActive = 0;
  private readonly options: MemoryDeviceOptions;

  constructor(options: MemoryDeviceOptions) {
    if (options.capacity % SECTOR !== 0) throw new BlksnapError('EINVAL', 'capacity must be a multiple of 512');
    this.options = options;
    this.name = options.name;
    this.capacity = options.capacity;
    this.readOnly = options.readOnly ?? false;
    this.data = Buffer.alloc(options.capacity);
    if (options.content !== undefined) this.data.set(options.content.subarray(0, options.capacity));
  }

  async read(offset: number, length: number): Promise<Buffer> {
    await this.enter('read', offset, length, false);
    return Buffer.from(this.data.subarray(offset, offset + length));
  }

  async write(offset: number, data: Uint8Array, options?: { fua?: boolean }): Promise<void> {
    await this.enter('write', offset, data.length, options?.fua ?? false);
    this.data.set(data, offset);
  }

  async flush(): Promise<void> {
    await this.enter('flush', 0, 0, false);
    this.flushes++;
  }

  async discard(offset: number, length: number): Promise<void> {
    await this.enter('discard', offset, length, false);
    this.data.fill(0, offset, offset + length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    await this.enter('writeZeroes', offset, length, false);
    this.data.fill(0, offset, offset + length);
  }

  private async enter(op: MemoryOp, offset: number, length: number, fua: boolean): Promise<void> {
    if (op !== 'flush') {
      if (offset % SECTOR !== 0 || length % SECTOR !== 0 || offset < 0 || offset + length > this.capacity) {
        throw new BlksnapError('EINVAL', `${op} of ${length} bytes at ${offset} is unaligned or out of range`);
      }
      if (op !== 'read' && this.readOnly) throw new BlksnapError('EROFS', `${this.name} is read-only`);
    }
    const delay = this.options.delayMs?.(op, offset, length) ?? 0;
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      const gate = this.options.gate?.(op, offset, length);
      if (gate !== undefined) await gate;
    } finally {
      this.active--;
    }
    const errno = this.options.failWith?.(op, offset, length);
    if (errno !== undefined) throw new BlksnapError(errno, `injected ${op} failure`);
    this.log.push({ op, offset, length, fua });
  }
}
