import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../../engine/core/event-queue.js';

describe('EventQueue', () => {
  it('delivers queued events in order with the snapshot id and a timestamp', async () => {
    const q = new EventQueue('sid');
    const t0 = Date.now();
    q.push({ code: 'low_free_space', requestedSectors: 16 });
    q.push({ code: 'no_space', requestedSectors: 8 });
    const a = await q.wait(0);
    const b = await q.wait(0);
    expect(a).toMatchObject({ code: 'low_free_space', requestedSectors: 16, snapshotId: 'sid' });
    expect(b).toMatchObject({ code: 'no_space', requestedSectors: 8 });
    expect(a!.timeMs).toBeGreaterThanOrEqual(t0);
    expect(await q.wait(0)).toBeNull();
  });

  it('wakes a waiter when an event arrives, and times out with null otherwise', async () => {
    const q = new EventQueue('sid');
    const w = q.wait(5000);
    setTimeout(() => q.push({ code: 'corrupted', device: 'd', devMajor: 240, devMinor: 1, errCode: -28 }), 10);
    expect(await w).toMatchObject({ code: 'corrupted', errCode: -28 });
    const t0 = Date.now();
    expect(await q.wait(30)).toBeNull();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(25);
    expect(q.pending).toBe(0);
  });

  it('close releases waiters with null and drops later events', async () => {
    const q = new EventQueue('sid');
    const w = q.wait(5000);
    q.close();
    expect(await w).toBeNull();
    q.push({ code: 'no_space', requestedSectors: 1 });
    expect(await q.wait(0)).toBeNull();
  });
});
