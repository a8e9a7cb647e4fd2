import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../../engine/nbd/buffer-pool.js';

describe('BufferPool', () => {
  it('hands a released buffer back for the same size, and a fresh one for another size', () => {
    const pool = new BufferPool(1 << 20);
    const a = pool.take(8192);
    expect(a.length).toBe(8192);
    pool.release(a);
    expect(pool.bytes).toBe(8192);
    expect(pool.take(8192)).toBe(a);
    expect(pool.bytes).toBe(0);
    const b = pool.take(16384);
    expect(b).not.toBe(a);
    expect(b.length).toBe(16384);
  });

  it('keeps no more than its byte budget', () => {
    const pool = new BufferPool(3 * 8192);
    const bufs = Array.from({ length: 5 }, () => pool.take(8192));
    for (const b of bufs) pool.release(b);
    expect(pool.bytes).toBe(3 * 8192);
    const again = Array.from({ length: 5 }, () => pool.take(8192));
    expect(again.filter((b) => bufs.includes(b))).toHaveLength(3);
  });

  it('never keeps small buffers or views of larger memory', () => {
    const pool = new BufferPool(1 << 20, 4096);
    const small = pool.take(512);
    pool.release(small);
    expect(pool.bytes).toBe(0);
    const whole = Buffer.allocUnsafeSlow(3 * 8192);
    pool.release(whole.subarray(8192, 16384));
    expect(pool.bytes).toBe(0);
    expect(pool.take(8192)).not.toBe(whole);
    pool.release(pool.take(8192));
    pool.clear();
    expect(pool.bytes).toBe(0);
  });
});
