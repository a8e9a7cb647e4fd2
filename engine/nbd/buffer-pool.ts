/**
 * Reuses the large buffers of one connection (read replies, write payloads that
 * arrive in several socket chunks). Fresh large buffers cost page faults and
 * garbage-collector work on every request; a buffer that was just written to the
 * socket or to the device is still mapped and warm. Buffers are kept by exact
 * size (NBD clients use a few request sizes), up to a byte budget; when a
 * released buffer would go over it, the buffers released longest ago make
 * room, whatever their size. (Until 2026-12-03 a full pool refused new
 * buffers, so the sizes of one kind of work, say 1 MiB READs' reply frames,
 * could hold it for good, and the next kind's buffers were all fresh.)
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  /** Every free buffer, oldest release first (a Set keeps insertion order). */
  private readonly byAge = new Set<Buffer>();
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
        this.byAge.delete(buf);
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
    if (size < this.minSize || size > this.budget) return;
    // Only whole buffers of their own (from take()) are kept, never views.
    if (buf.byteOffset !== 0 || buf.buffer.byteLength !== size) return;
    if (this.byAge.has(buf)) return;
    for (const old of this.byAge) {
      if (this.pooledBytes + size <= this.budget) break;
      this.drop(old);
    }
    let list = this.free.get(size);
    if (list === undefined) {
      list = [];
      this.free.set(size, list);
    }
    list.push(buf);
    this.byAge.add(buf);
    this.pooledBytes += size;
  }

  /** Forgets a free buffer (the garbage collector frees it). */
  private drop(buf: Buffer): void {
    this.byAge.delete(buf);
    const list = this.free.get(buf.length);
    const at = list === undefined ? -1 : list.indexOf(buf);
    if (list === undefined || at < 0) return;
    list.splice(at, 1);
    if (list.length === 0) this.free.delete(buf.length);
    this.pooledBytes -= buf.length;
  }

  /** Bytes held in free buffers. */
  get bytes(): number {
    return this.pooledBytes;
  }

  clear(): void {
    this.free.clear();
    this.byAge.clear();
    this.pooledBytes = 0;
  }
}
