/**
 * SHA-256 of a stream of chunks, computed on a worker thread so that hashing the
 * whole image runs beside the reading, block hashing and writing of the main
 * thread. At most MAX_QUEUED chunks wait for the worker (update() resolves when
 * there is room again). The worker is plain JavaScript evaluated from a string, so
 * it runs the same from sources (tsx, vitest) and from the build.
 */
import { Worker } from 'node:worker_threads';
import { BlksnapError } from '../abi/errno.js';

const MAX_QUEUED = 4;

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hash = createHash('sha256');
parentPort.on('message', (m) => {
  if (m === null) parentPort.postMessage({ digest: hash.digest('hex') });
  else { hash.update(m); parentPort.postMessage({ done: true }); }
});
`;

export class Sha256Worker {
  private readonly worker: Worker;
  private queued = 0;
  private waiting: (() => void) | null = null;
  private digestWaiter: { resolve: (hex: string) => void; reject: (err: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true });
    this.worker.on('message', (m: { done?: true; digest?: string }) => {
      if (m.digest !== undefined) this.digestWaiter?.resolve(m.digest);
      else {
        this.queued--;
        const w = this.waiting;
        this.waiting = null;
        w?.();
      }
    });
    this.worker.on('error', (err) => {
      this.failure = err;
      this.waiting?.();
      this.digestWaiter?.reject(new BlksnapError('EIO', `the SHA-256 worker failed: ${err.message}`));
    });
  }

  /**
   * Queues data; resolves once fewer than MAX_QUEUED chunks wait. By default a copy is
   * sent, so the caller's buffer stays its own. With `handOver` the caller gives the
   * buffer away: when it spans its whole ArrayBuffer that memory is moved to the worker
   * without a copy (and the caller's buffer becomes empty), else it is copied.
   */
  async update(data: Uint8Array, handOver = false): Promise<void> {
    if (this.failure) throw new BlksnapError('EIO', `the SHA-256 worker failed: ${this.failure.message}`);
    const whole = handOver && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
    const copy = whole ? data : new Uint8Array(data);
    this.worker.postMessage(copy, [copy.buffer as ArrayBuffer]);
    this.queued++;
    while (this.queued >= MAX_QUEUED && !this.failure) await new Promise<void>((resolve) => (this.waiting = resolve));
  }

  /** The digest of everything queued (hex); ends the worker. */
  async digest(): Promise<string> {
    if (this.failure) throw new BlksnapError('EIO', `the SHA-256 worker failed: ${this.failure.message}`);
    const hex = await new Promise<string>((resolve, reject) => {
      this.digestWaiter = { resolve, reject };
      this.worker.postMessage(null);
    });
    await this.close();
    return hex;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
