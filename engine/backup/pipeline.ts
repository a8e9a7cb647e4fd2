/**
 * The two halves of the backup's pipeline: reads that run ahead of the hashing
 * (readAhead), and writes that run behind it (SerialQueue), each bounded so that
 * memory stays a few chunks whatever the image size.
 */

/**
 * Yields produce(0), produce(1), ... produce(count - 1) in order, keeping up to
 * `ahead` of them running while the caller works on the one it got. When the caller
 * stops early (an error, a cancel) the ones still running are waited for (their
 * failures are dropped: the caller already has its own).
 */
export async function* readAhead<T>(count: number, ahead: number, produce: (index: number) => Promise<T>): AsyncGenerator<T> {
  const running: Promise<T>[] = [];
  let next = 0;
  const start = (): void => {
    const p = produce(next++);
    p.catch(() => undefined); // handled when its turn comes; never an unhandled rejection
    running.push(p);
  };
  try {
    while (next < count && running.length < Math.max(1, ahead)) start();
    while (running.length > 0) {
      const value = await running.shift()!;
      if (next < count) start();
      yield value;
    }
  } finally {
    await Promise.all(running.map((p) => p.catch(() => undefined)));
  }
}

/**
 * Runs tasks one after another, in the order they were pushed, behind the caller:
 * push() resolves as soon as fewer than `limit` tasks wait or run. After a task
 * fails the later ones are skipped, and push() and drain() reject with that failure.
 */
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();
  private readonly inFlight: Promise<void>[] = [];
  private failure: { reason: unknown } | null = null;

  constructor(private readonly limit: number) {}

  async push(task: () => Promise<void>): Promise<void> {
    this.throwIfFailed();
    const done = this.tail
      .then(() => (this.failure ? undefined : task()))
      .catch((reason: unknown) => {
        this.failure ??= { reason };
      });
    this.tail = done;
    this.inFlight.push(done);
    while (this.inFlight.length >= Math.max(1, this.limit)) await this.inFlight.shift();
    this.throwIfFailed();
  }

  /** Waits for every task pushed; rejects with the first failure. */
  async drain(): Promise<void> {
    await this.tail;
    this.inFlight.length = 0;
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.reason;
  }
}
