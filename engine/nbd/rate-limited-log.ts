/**
 * A log that writes at most `perSecond` lines a second and then counts what it
 * holds back, writing one "N more messages suppressed" line when the second is
 * over. A client that sends garbage in a loop cannot flood the journal.
 */
export class RateLimitedLog {
  private windowStart = Number.NEGATIVE_INFINITY;
  private written = 0;
  private suppressed = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly sink: (message: string) => void,
    private readonly perSecond: number,
    /** Prefix of the summary line (e.g. "nbd[3]"). */
    private readonly label: string,
    private readonly now: () => number = Date.now,
  ) {}

  log(message: string): void {
    const t = this.now();
    if (t - this.windowStart >= 1000) {
      this.flush();
      this.windowStart = t;
      this.written = 0;
    }
    if (this.written < this.perSecond) {
      this.written++;
      this.sink(message);
      return;
    }
    this.suppressed++;
    if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flush();
      }, Math.max(1, this.windowStart + 1000 - t));
      this.timer.unref();
    }
  }

  /** Writes the pending summary, if any (also when the connection ends). */
  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.suppressed === 0) return;
    const n = this.suppressed;
    this.suppressed = 0;
    this.sink(`${this.label}: ${n} more message${n === 1 ? '' : 's'} suppressed (at most ${this.perSecond} a second)`);
  }
}
