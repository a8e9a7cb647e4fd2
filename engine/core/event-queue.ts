/**
 * The event queue of a snapshot (seed 001, event_queue.c): events are queued with a
 * timestamp; event_wait() takes the oldest one or gives up after the timeout.
 */
import type { SnapshotEvent } from '../abi/types.js';

type Waiter = (ev: SnapshotEvent | null) => void;

/** An event as queued, without the snapshot id and time (added by the queue). */
export type EventBody =
  | { code: 'corrupted'; device: string; devMajor: number; devMinor: number; errCode: number }
  | { code: 'low_free_space'; requestedSectors: number }
  | { code: 'no_space'; requestedSectors: number };

export class EventQueue {
  private readonly events: SnapshotEvent[] = [];
  private readonly waiters: Waiter[] = [];
  private closed = false;

  constructor(private readonly snapshotId: string) {}

  /** event_gen() */
  push(body: EventBody): void {
    if (this.closed) return;
    const ev = { ...body, snapshotId: this.snapshotId, timeMs: Date.now() } as SnapshotEvent;
    const w = this.waiters.shift();
    if (w) w(ev);
    else this.events.push(ev);
  }

  /** event_wait(): the oldest event, or null after timeoutMs. */
  wait(timeoutMs: number): Promise<SnapshotEvent | null> {
    const ev = this.events.shift();
    if (ev) return Promise.resolve(ev);
    if (this.closed || !(timeoutMs > 0)) return Promise.resolve(null);
    return new Promise((resolve) => {
      const waiter: Waiter = (e) => {
        clearTimeout(timer);
        resolve(e);
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(null);
      }, Math.min(timeoutMs, 2 ** 31 - 1));
      this.waiters.push(waiter);
    });
  }

  /** Releases waiters with null; later events are dropped (the snapshot is gone). */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w(null);
    this.events.length = 0;
  }

  get pending(): number {
    return this.events.length;
  }
}
