import { describe, expect, it } from 'vitest';
import { BlksnapError } from '../../../engine/abi/errno.js';
import type { BlksnapDriver } from '../../../engine/abi/driver.js';
import type { SnapshotEvent } from '../../../engine/abi/types.js';
import { EventPump } from '../../../engine/helper/event-pump.js';

const ID = '0b7c1a52-8d7e-4c36-9a57-2f0f3bd0e0a1';

/** A driver whose waitEvent hands out queued events, then reports the snapshot gone. */
function fakeDriver(events: SnapshotEvent[], goneAfter: number): { driver: BlksnapDriver; calls: () => number } {
  let calls = 0;
  const driver = {
    kind: 'embedded',
    snapshotWaitEvent: async (_id: string, timeoutMs: number) => {
      calls++;
      const next = events.shift();
      if (next) return next;
      if (calls > goneAfter) throw new BlksnapError('ESRCH', 'gone');
      await new Promise((r) => setTimeout(r, Math.min(timeoutMs, 10)));
      return null;
    },
  } as unknown as BlksnapDriver;
  return { driver, calls: () => calls };
}

const ev = (n: number): SnapshotEvent => ({ code: 'low_free_space', snapshotId: ID, timeMs: n, requestedSectors: n });

describe('EventPump', () => {
  it('broadcasts every event and serves waiters from the same stream without losing any', async () => {
    const { driver } = fakeDriver([ev(1), ev(2), ev(3)], 1000);
    const broadcast: number[] = [];
    const pump = new EventPump(driver, ID, () => 10, { onEvent: (e) => broadcast.push(e.timeMs), onGone: () => {} });
    const first = pump.next(1000);
    pump.start();
    expect((await first)?.timeMs).toBe(1);
    expect((await pump.next(1000))?.timeMs).toBe(2);
    expect((await pump.next(1000))?.timeMs).toBe(3);
    expect(await pump.next(30)).toBeNull();
    expect(broadcast).toEqual([1, 2, 3]);
    await pump.stop();
    expect(pump.running).toBe(false);
  });

  it('reports a snapshot that disappeared and answers waiters with null', async () => {
    const { driver } = fakeDriver([], 2);
    const gone: string[] = [];
    const pump = new EventPump(driver, ID, () => 5, { onEvent: () => {}, onGone: (id) => gone.push(id) });
    const waiting = pump.next(10_000);
    pump.start();
    expect(await waiting).toBeNull();
    expect(gone).toEqual([ID]);
  });
});

describe('EventPump waiters that go away', () => {
  it('a waiter whose client went away gets null at once and the next event goes to the waiter still there', async () => {
    const events: SnapshotEvent[] = [];
    const driver = {
      kind: 'embedded',
      snapshotWaitEvent: async () => {
        await new Promise((r) => setTimeout(r, 5));
        return events.shift() ?? null;
      },
    } as unknown as BlksnapDriver;
    const pump = new EventPump(driver, ID, () => 5, { onEvent: () => {}, onGone: () => {} });
    pump.start();
    try {
      const client = new AbortController();
      const gone = pump.next(60_000, client.signal);
      const staying = pump.next(2_000);
      client.abort();
      expect(await gone).toBeNull();
      events.push(ev(7));
      expect((await staying)?.timeMs).toBe(7);
      expect(await pump.next(10, AbortSignal.abort())).toBeNull();
    } finally {
      await pump.stop();
    }
  });

  it('waits again at once after an interrupted wait (EINTR), without reporting an error', async () => {
    let calls = 0;
    const driver = {
      kind: 'kernel',
      snapshotWaitEvent: async () => {
        calls++;
        if (calls <= 3) throw new BlksnapError('EINTR', 'interrupted');
        if (calls === 4) return ev(7);
        throw new BlksnapError('ESRCH', 'gone');
      },
    } as unknown as BlksnapDriver;
    const errors: unknown[] = [];
    const seen: number[] = [];
    let gone = false;
    const pump = new EventPump(driver, ID, () => 10, {
      onEvent: (e) => seen.push(e.timeMs),
      onGone: () => {
        gone = true;
      },
      onError: (_id, err) => errors.push(err),
    });
    const started = Date.now();
    pump.start();
    while (!gone && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 5));
    expect(seen).toEqual([7]);
    expect(errors).toEqual([]);
    await pump.stop();
  });
});
