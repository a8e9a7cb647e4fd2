/**
 * A server-wide budget of bytes that requests hold while they run and while
 * their replies wait in a socket. Connections take from it in turn (first come,
 * first served); a request of any allowed size is granted when nothing else
 * holds the budget, so one oversized request can never wait for ever.
 */
export interface BudgetGrant {
  /** Resolves true when the bytes were granted, false when the wait was cancelled. */
  readonly granted: Promise<boolean>;
  /** Gives up waiting (a no-op once granted). */
  cancel(): void;
  /** False when the bytes were granted at once. */
  readonly waited: boolean;
}

interface Waiter {
  bytes: number;
  resolve: (granted: boolean) => void;
}

const GRANTED: BudgetGrant = { granted: Promise.resolve(true), cancel: () => undefined, waited: false };

export class ByteBudget {
  private used = 0;
  private readonly waiters: Waiter[] = [];

  constructor(readonly total: number) {}

  /** Bytes held now. */
  get inUse(): number {
    return this.used;
  }

  /** Requests waiting for bytes now. */
  get waiting(): number {
    return this.waiters.length;
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.total;
  }

  /** Takes `bytes` at once when they fit and nobody waits before us, else queues. */
  acquire(bytes: number): BudgetGrant {
    if (this.waiters.length === 0 && this.fits(bytes)) {
      this.used += bytes;
      return GRANTED;
    }
    let waiter: Waiter | null = null;
    const granted = new Promise<boolean>((resolve) => {
      waiter = { bytes, resolve };
      this.waiters.push(waiter);
    });
    return {
      granted,
      waited: true,
      cancel: () => {
        const index = waiter === null ? -1 : this.waiters.indexOf(waiter);
        if (index < 0) return;
        this.waiters.splice(index, 1);
        waiter?.resolve(false);
        this.grantWaiting(); // the head may have changed
      },
    };
  }

  release(bytes: number): void {
    this.used -= bytes;
    if (this.used < 0) throw new Error('ByteBudget: released more than was held');
    this.grantWaiting();
  }

  private grantWaiting(): void {
    for (;;) {
      const head = this.waiters[0];
      if (head === undefined || !this.fits(head.bytes)) return;
      this.waiters.shift();
      this.used += head.bytes;
      head.resolve(true);
    }
  }
}
