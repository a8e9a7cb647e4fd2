/**
 * Chunk buffers (seed 001, diff_buffer.c): a buffer holds one chunk in memory;
 * released buffers go to a free pool of at most free_diff_buffer_pool_size buffers,
 * the rest are dropped.
 */
export class DiffBufferPool {
  private readonly free: Buffer[] = [];
  /** Buffers handed out and not yet released. */
  inUse = 0;

  constructor(
    readonly bufferSize: number,
    private readonly poolSize: number,
  ) {}

  /** diff_buffer_take() */
  take(): Buffer {
    const buf = this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferSize);
    this.inUse++;
    return buf;
  }

  /** diff_buffer_release() */
  release(buf: Buffer): void {
    this.inUse--;
    if (this.free.length < this.poolSize) this.free.push(buf);
  }

  /** diff_buffer_cleanup() */
  cleanup(): void {
    this.free.length = 0;
  }

  get freeCount(): number {
    return this.free.length;
  }
}
