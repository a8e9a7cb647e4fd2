/**
 * Reuses the large buffers of one connection (read replies, write payloads that
 * arrive in several socket chunks). Fresh large buffers cost page faults and
 * garbage-collector work on every request; a buffer that was just written to the
 * socket or to the device is still mapped and warm. Buffers are kept by exact
 * size (NBD clients use a few request sizes), up to a byte budget.
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private pooledBytes = 0;

  constructor(
    /** Bytes kept at most in free buffers. */
    private readonly budget: number,
    /** Buffers smaller than this are not pooled (Node's own slab serves them). */
    private readonly minSize = 4096,
  ) {}

  /** A buffer of exactly `size` bytes (contents undefined). */
  take(size: number): Buffer {
    if (size >= this.minSize) {
      const list = this.free.get(size);
      const buf = list?.pop();
      if (buf !== undefined) {
        this.pooledBytes -= size;
        return buf;
      }
      return Buffer.allocUnsafeSlow(size);
    }
    return Buffer.allocUnsafe(size);
  }

  /** Gives a buffer from take() back; the caller must not touch it any more. */
  release(buf: Buffer): void {
    const size = buf.length;
    if (size < this.minSize || this.pooledBytes + size > this.budget) return;
    // Only whole buffers of their own (from take()) are kept, never views.
    if (buf.byteOffset !== 0 || buf.buffer.byteLength !== size) return;
    let list = this.free.get(size);
    if (list === undefined) {
      list = [];
      this.free.set(size, list);
    }
    list.push(buf);
    this.pooledBytes += size;
  }

  /** Bytes held in free buffers. */
  get bytes(): number {
    return this.pooledBytes;
  }

  clear(): void {
    this.free.clear();
    this.pooledBytes = 0;
  }
}
