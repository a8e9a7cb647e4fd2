/**
 * Incremental writeback of an image file while it is being written. Node has no
 * sync_file_range(2), so every STEP bytes written one fdatasync is started in the
 * background (libuv's thread pool; at most one at a time, never awaited by the
 * writer). The disk then writes the file while the backup goes on reading and
 * hashing, and the final fdatasync (which stays: a point is durable before it is
 * renamed) only has the last few MiB left to write.
 */
import { fdatasync } from '../core/file-io.js';

/** Bytes written between two background syncs. */
export const WRITEBACK_STEP = 8 * 1024 * 1024;

export class Writeback {
  private unsynced = 0;
  private running: Promise<void> | null = null;
  private failure: Error | null = null;

  constructor(
    private readonly fd: number,
    private readonly step = WRITEBACK_STEP,
    private readonly sync: (fd: number) => Promise<void> = fdatasync,
  ) {}

  /** Counts bytes just written; starts a background sync when STEP bytes wait and none runs. */
  wrote(bytes: number): void {
    this.unsynced += bytes;
    if (this.failure) throw this.failure;
    if (this.running !== null || this.unsynced < this.step) return;
    this.unsynced = 0;
    this.running = this.sync(this.fd).then(
      () => {
        this.running = null;
      },
      (err: Error) => {
        this.running = null;
        this.failure = err;
      },
    );
  }

  /** Waits for the background sync (before the final fdatasync, or before closing the fd). */
  async settle(): Promise<void> {
    await this.running;
    if (this.failure) throw this.failure;
  }

  /** Waits for the background sync and forgets its failure (on abort). */
  async quiet(): Promise<void> {
    await this.running;
  }
}
