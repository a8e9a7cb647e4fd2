/**
 * One event pump per snapshot: the only reader of the driver's event queue (a
 * snapshotWaitEvent loop). Each event is broadcast to subscribed clients and kept
 * in a short queue from which clients' own snapshotWaitEvent calls are served, so
 * several clients never steal events from each other.
 */
import type { BlksnapDriver } from '../abi/driver.js';
import { isBlksnapError } from '../abi/errno.js';
import type { SnapshotEvent, SnapshotId } from '../abi/types.js';

const MAX_QUEUED = 256;

interface Waiter {
  resolve: (event: SnapshotEvent | null) => void;
  timer: ReturnType<typeof setTimeout>;
}

export interface EventPumpHooks {
  onEvent(event: SnapshotEvent): void;
  /** The driver no longer knows the snapshot (destroyed elsewhere). */
  onGone(id: SnapshotId): void;
  onError?(id: SnapshotId, error: unknown): void;
}

export class EventPump {
  private stopped = false;
  private readonly queue: SnapshotEvent[] = [];
  private readonly waiters: Waiter[] = [];
  private loop: Promise<void> | null = null;

  constructor(
    private readonly driver: BlksnapDriver,
    readonly id: SnapshotId,
    private readonly pollMs: () => number,
    private readonly hooks: EventPumpHooks,
  ) {}

  start(): void {
    if (!this.loop) this.loop = this.run();
  }

  /** Stops the loop (after the driver call in flight returns) and answers waiters with null. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve(null);
    }
    await this.loop;
  }

  get running(): boolean {
    return !this.stopped;
  }

  /**
   * The next event not yet taken by a waiter, or null after timeoutMs. A waiter whose
   * `cancel` signal fires (its client disconnected) gets null and leaves the line at
   * once, so the next event goes to a waiter still there to receive it.
   */
  next(timeoutMs: number, cancel?: AbortSignal): Promise<SnapshotEvent | null> {
    if (cancel?.aborted) return Promise.resolve(null);
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.stopped || timeoutMs <= 0) return Promise.resolve(null);
    return new Promise((resolve) => {
      const leave = (): void => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        clearTimeout(waiter.timer);
        cancel?.removeEventListener('abort', leave);
        resolve(null);
      };
      const waiter: Waiter = {
        resolve: (event) => {
          cancel?.removeEventListener('abort', leave);
          resolve(event);
        },
        timer: setTimeout(leave, timeoutMs),
      };
      this.waiters.push(waiter);
      cancel?.addEventListener('abort', leave, { once: true });
    });
  }

  private deliver(event: SnapshotEvent): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.resolve(event);
    } else {
      this.queue.push(event);
      if (this.queue.length > MAX_QUEUED) this.queue.shift();
    }
    this.hooks.onEvent(event);
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        const event = await this.driver.snapshotWaitEvent(this.id, this.pollMs());
        failures = 0;
        if (event && !this.stopped) this.deliver(event);
      } catch (err) {
        if (this.stopped) break;
        if (isBlksnapError(err) && (err.errno === 'ESRCH' || err.errno === 'ENOENT' || err.errno === 'ENODEV')) {
          this.stopped = true;
          for (const w of this.waiters.splice(0)) {
            clearTimeout(w.timer);
            w.resolve(null);
          }
          this.hooks.onGone(this.id);
          break;
        }
        // an interrupted wait (the module's -EINTR) is a wait that ended early: wait again
        if (isBlksnapError(err) && err.errno === 'EINTR') continue;
        this.hooks.onError?.(this.id, err);
        failures++;
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(failures, 6))));
      }
    }
  }
}
