import { describe, expect, it } from 'vitest';
import { SerialQueue, readAhead } from '../../../engine/backup/pipeline.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A promise with its resolve/reject in hand. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('readAhead', () => {
  it('yields every result in order while keeping exactly `ahead` reads running', async () => {
    const gates = Array.from({ length: 6 }, () => deferred<number>());
    const started: number[] = [];
    const gen = readAhead(6, 3, (i) => {
      started.push(i);
      return gates[i]!.promise;
    });
    const first = gen.next();
    await tick();
    expect(started).toEqual([0, 1, 2]); // three ahead, not more
    gates[2]!.resolve(2); // a later one finishing first changes nothing about the order
    gates[0]!.resolve(0);
    expect((await first).value).toBe(0);
    expect(started).toEqual([0, 1, 2, 3]); // one more started when the first was taken
    for (const i of [1, 3, 4, 5]) gates[i]!.resolve(i);
    const rest: number[] = [];
    for await (const v of gen) rest.push(v);
    expect(rest).toEqual([1, 2, 3, 4, 5]);
  });

  it('rejects with a read failure in its turn, only after the reads still running have ended', async () => {
    const late = deferred<number>();
    let lateSettled = false;
    const gen = readAhead(3, 3, (i) => {
      if (i === 0) return Promise.resolve(0);
      if (i === 1) return Promise.reject(new Error('EIO: read 1 failed'));
      return late.promise.finally(() => (lateSettled = true));
    });
    expect((await gen.next()).value).toBe(0);
    setTimeout(() => late.resolve(2), 20);
    await expect(gen.next()).rejects.toThrow(/read 1 failed/);
    expect(lateSettled).toBe(true); // no read left running behind the failure
    expect((await gen.next()).done).toBe(true);
  });
});

describe('SerialQueue', () => {
  it('runs tasks one at a time in push order, and push returns while fewer than `limit` wait', async () => {
    const q = new SerialQueue(2);
    const log: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const gates = [deferred(), deferred(), deferred()];
    const task = (i: number) => async (): Promise<void> => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      log.push(`start ${i}`);
      await gates[i]!.promise;
      log.push(`end ${i}`);
      running--;
    };
    await q.push(task(0)); // one in the queue: returns at once
    let secondPushed = false;
    const second = q.push(task(1)).then(() => (secondPushed = true));
    await tick();
    expect(secondPushed).toBe(false); // two would wait: push holds the caller back
    gates[0]!.resolve();
    await second;
    const third = q.push(task(2));
    gates[1]!.resolve();
    await third;
    gates[2]!.resolve();
    await q.drain();
    expect(log).toEqual(['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2']);
    expect(maxRunning).toBe(1);
  });

  it('skips the tasks after a failure and rejects push and drain with it', async () => {
    const q = new SerialQueue(4);
    const ran: number[] = [];
    await q.push(async () => {
      ran.push(0);
      throw new Error('ENOSPC: no space left on the backup disk');
    });
    await q.push(async () => {
      ran.push(1);
    }).catch(() => undefined);
    await expect(q.drain()).rejects.toThrow(/ENOSPC/);
    await expect(q.push(async () => undefined)).rejects.toThrow(/ENOSPC/);
    expect(ran).toEqual([0]);
  });
});
