import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../../../engine/nbd/byte-budget.js';

describe('ByteBudget', () => {
  it('grants while the bytes fit, then in arrival order as bytes come back', async () => {
    const budget = new ByteBudget(100);
    expect(await budget.acquire(60).granted).toBe(true);
    const order: string[] = [];
    const a = budget.acquire(50);
    const b = budget.acquire(10); // fits, but waits behind a (first come, first served)
    void a.granted.then(() => order.push('a'));
    void b.granted.then(() => order.push('b'));
    await Promise.resolve();
    expect(order).toEqual([]);
    expect(budget.waiting).toBe(2);
    budget.release(60);
    await Promise.all([a.granted, b.granted]);
    expect(order).toEqual(['a', 'b']);
    expect(budget.inUse).toBe(60);
  });

  it('grants a request larger than the whole budget when nothing else holds bytes', async () => {
    const budget = new ByteBudget(100);
    expect(await budget.acquire(500).granted).toBe(true);
    const next = budget.acquire(1);
    budget.release(500);
    expect(await next.granted).toBe(true);
  });

  it('a cancelled wait resolves false, holds nothing, and lets the next waiter through', async () => {
    const budget = new ByteBudget(100);
    await budget.acquire(90).granted;
    const big = budget.acquire(50);
    const small = budget.acquire(5);
    big.cancel();
    expect(await big.granted).toBe(false);
    expect(await small.granted).toBe(true);
    expect(budget.inUse).toBe(95);
    expect(budget.waiting).toBe(0);
    expect(() => budget.release(200)).toThrow(/released more than was held/);
  });
});
