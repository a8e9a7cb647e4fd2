/**
 * The block-device abstraction the embedded engine works on, and what the NBD
 * server exports. Offsets and lengths are in bytes and must be multiples of the
 * 512-byte sector and inside the capacity; anything else is rejected with EINVAL
 * (BlksnapError) before any byte is written.
 */
export interface BlockDevice {
  /** Short name, unique within the engine (e.g. "disk1", "blksnap-image0"). */
  readonly name: string;
  /** Capacity in bytes (a multiple of 512). */
  readonly capacity: number;
  readonly logicalBlockSize: number;
  readonly physicalBlockSize: number;
  readonly readOnly: boolean;

  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Optional: like read(), into target[targetOffset, targetOffset+length) instead of
   * a new buffer (lets a server read straight into its reply frame). Same checks and
   * errors as read().
   */
  readTo?(offset: number, length: number, target: Buffer, targetOffset: number): Promise<void>;
  /** fua: the data is durable when the promise resolves. */
  write(offset: number, data: Uint8Array, options?: { fua?: boolean }): Promise<void>;
  flush(): Promise<void>;
  /** Discard (TRIM): the range may read back as anything afterwards; the engine writes zeroes. */
  discard(offset: number, length: number): Promise<void>;
  writeZeroes(offset: number, length: number): Promise<void>;
}
