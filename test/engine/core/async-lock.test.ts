import { describe, expect, it } from 'vitest';
import { IoGate, KeyedMutex } from '../../../engine/core/async-lock.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('KeyedMutex', () => {
  it('serialises holders of one key in FIFO order and frees the entry when idle', async () => {
    const m = new KeyedMutex();
    const order: string[] = [];
    expect(m.lock(1)).toBeUndefined(); // free: taken at once
    expect(m.tryLock(1)).toBe(false);
    expect(m.tryLock(2)).toBe(true); // other keys are independent
    const a = m.lock(1)!.then(() => order.push('a'));
    const b = m.lock(1)!.then(() => order.push('b'));
    await tick();
    expect(order).toEqual([]);
    m.unlock(1);
    await a;
    expect(order).toEqual(['a']);
    m.unlock(1);
    await b;
    m.unlock(1);
    m.unlock(2);
    expect(m.size).toBe(0);
    expect(() => m.unlock(1)).toThrow(/unlock of a free lock 1/);
  });
});

describe('IoGate', () => {
  it('freeze waits for entered operations and holds new ones until unfreeze', async () => {
    const g = new IoGate();
    expect(g.enter()).toBeUndefined();
    let frozen = false;
    const f = g.freeze().then(() => {
      frozen = true;
    });
    await tick();
    expect(frozen).toBe(false); // one operation still inside
    const waiting = g.enter();
    expect(waiting).toBeInstanceOf(Promise);
    g.leave();
    await f;
    expect(frozen).toBe(true);
    let entered = false;
    void waiting!.then(() => {
      entered = true;
    });
    await tick();
    expect(entered).toBe(false);
    g.unfreeze();
    await tick();
    expect(entered).toBe(true);
    expect(g.inFlight).toBe(1);
    g.leave();
    await g.freeze(); // nothing inside: immediate
    g.unfreeze();
  });

  it('enterNowYielding: a freeze asks the entry to give way once, and waits until it leaves', async () => {
    const g = new IoGate();
    const asked: string[] = [];
    const leaveA = g.enterNowYielding(() => asked.push('a'));
    const leaveB = g.enterNowYielding(() => asked.push('b'));
    leaveB(); // left before any freeze: never asked
    leaveB(); // a second leave does nothing
    expect(g.inFlight).toBe(1);
    let frozen = false;
    const f = g.freeze().then(() => {
      frozen = true;
    });
    expect(asked).toEqual(['a']);
    await tick();
    expect(frozen).toBe(false); // asked, not yet left
    leaveA();
    await f;
    expect(frozen).toBe(true);
    // A second freeze while frozen asks nobody again.
    void g.freeze();
    expect(asked).toEqual(['a']);
    g.unfreeze();
    g.unfreeze();
    expect(() => g.enterNowYielding(() => asked.push('c'))).not.toThrow();
    expect(g.inFlight).toBe(1);
  });
});
