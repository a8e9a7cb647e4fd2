/**
 * Small async synchronisation primitives.
 *
 * KeyedMutex: one mutex per key (per chunk number), created on first use and
 * dropped when released with nobody waiting, so nothing is allocated per chunk up
 * front (the module's per-chunk semaphore, chunk->lock).
 *
 * IoGate: the queue freeze of the block layer (blk_mq_freeze_queue): writes enter
 * and leave the gate; freeze() stops new entries and waits for those inside.
 */

interface LockEntry {
  waiters: (() => void)[];
}

export class KeyedMutex {
  private readonly held = new Map<number, LockEntry>();

  isLocked(key: number): boolean {
    return this.held.has(key);
  }

  /** Takes the lock if free; true when taken. */
  tryLock(key: number): boolean {
    if (this.held.has(key)) return false;
    this.held.set(key, { waiters: [] });
    return true;
  }

  lock(key: number): Promise<void> | undefined {
    const e = this.held.get(key);
    if (!e) {
      this.held.set(key, { waiters: [] });
      return undefined;
    }
    return new Promise<void>((resolve) => e.waiters.push(resolve));
  }

  unlock(key: number): void {
    const e = this.held.get(key);
    if (!e) throw new Error(`unlock of a free lock ${key}`);
    const next = e.waiters.shift();
    if (next) next();
    else this.held.delete(key);
  }

  get size(): number {
    return this.held.size;
  }
}

export class IoGate {
  private inflight = 0;
  private frozenCount = 0;
  private readonly entryWaiters: (() => void)[] = [];
  private drainWaiters: (() => void)[] = [];
  /** Entries made with enterNowYielding() that have not been asked to give way yet. */
  private readonly yielding = new Set<{ onFreeze: () => void }>();

  /** Enter the gate (waits while frozen). Returns a promise only when it has to wait. */
  enter(): Promise<void> | undefined {
    if (this.frozenCount === 0) {
      this.inflight++;
      return undefined;
    }
    return new Promise<void>((resolve) => {
      this.entryWaiters.push(() => {
        this.inflight++;
        resolve();
      });
    });
  }

  /** True while frozen: enter() would wait. */
  get frozen(): boolean {
    return this.frozenCount > 0;
  }

  /** Enters an open gate (check `frozen` first); for callers that cannot wait. */
  enterNow(): void {
    if (this.frozenCount > 0) throw new Error('IoGate.enterNow on a frozen gate');
    this.inflight++;
  }

  /**
   * Enters an open gate (check `frozen` first) for an operation that can give
   * way to a freeze: if one begins while it is inside, `onFreeze` is called
   * (once), and the operation should leave as soon as it can. Returns its
   * leave() (calls after the first do nothing).
   */
  enterNowYielding(onFreeze: () => void): () => void {
    this.enterNow();
    const entry = { onFreeze };
    this.yielding.add(entry);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.yielding.delete(entry);
      this.leave();
    };
  }

  leave(): void {
    this.inflight--;
    if (this.inflight === 0 && this.drainWaiters.length > 0) {
      const w = this.drainWaiters;
      this.drainWaiters = [];
      for (const f of w) f();
    }
  }

  /** Stop new entries and wait until every entered operation has left. */
  async freeze(): Promise<void> {
    this.frozenCount++;
    for (const entry of [...this.yielding]) {
      this.yielding.delete(entry);
      entry.onFreeze();
    }
    if (this.inflight === 0) return;
    await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }

  unfreeze(): void {
    if (this.frozenCount === 0) return;
    this.frozenCount--;
    if (this.frozenCount > 0) return;
    const w = this.entryWaiters.splice(0);
    for (const f of w) f();
  }

  get inFlight(): number {
    return this.inflight;
  }
}
