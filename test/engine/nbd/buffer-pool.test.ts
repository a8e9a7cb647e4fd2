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

  it('makes room for a buffer of another size by dropping the ones released longest ago', () => {
    // A pool full of one size (READ reply frames) must still keep the next
    // size asked for (WRITE payload buffers), or every one of those is fresh.
    const pool = new BufferPool(4 * 8192);
    const frames = Array.from({ length: 4 }, () => pool.take(8192));
    for (const f of frames) pool.release(f);
    expect(pool.bytes).toBe(4 * 8192);
    const payload = pool.take(16384);
    pool.release(payload);
    expect(pool.bytes).toBe(4 * 8192);
    expect(pool.take(16384)).toBe(payload);
    // The two released first made room; the two released last are still there.
    const kept = [pool.take(8192), pool.take(8192)];
    expect(kept).toContain(frames[2]);
    expect(kept).toContain(frames[3]);
    expect(pool.take(8192)).not.toBe(frames[0]);
    expect(pool.bytes).toBe(0);
  });

  it('keeps a buffer released twice once, and none larger than the budget', () => {
    const pool = new BufferPool(2 * 8192);
    const a = pool.take(8192);
    pool.release(a);
    pool.release(a);
    expect(pool.bytes).toBe(8192);
    expect(pool.take(8192)).toBe(a);
    expect(pool.take(8192)).not.toBe(a);
    pool.release(pool.take(4 * 8192));
    expect(pool.bytes).toBe(0);
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
