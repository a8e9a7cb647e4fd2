import { describe, expect, it } from 'vitest';
import type { BlksnapError } from '../../../engine/abi/errno.js';
import { MAX_CATCH_UP_MS, OffsetPicker, WorkloadManager, WorkloadRunner, WORKLOAD_WRITE_SIZE } from '../../../engine/helper/workload.js';
import type { WorkloadProgress } from '../../../engine/helper/workload.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { seededRandom } from '../../helpers/seeded-random.js';

const MIB = 1024 * 1024;
const KIB64 = 64 * 1024;

/** A small deterministic PRNG (mulberry32). */

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('OffsetPicker', () => {
  it('sequential walks the device in write-size steps and wraps', () => {
    const p = new OffsetPicker('sequential', 4, KIB64, seededRandom(1));
    expect([p.next(), p.next(), p.next(), p.next(), p.next()]).toEqual([0, KIB64, 2 * KIB64, 3 * KIB64, 0]);
  });

  it('random spreads over the whole device, aligned', () => {
    const p = new OffsetPicker('random', 1000, KIB64, seededRandom(2));
    const offsets = Array.from({ length: 5000 }, () => p.next());
    expect(offsets.every((o) => o % KIB64 === 0 && o >= 0 && o < 1000 * KIB64)).toBe(true);
    expect(new Set(offsets).size).toBeGreaterThan(900);
    const firstTenth = offsets.filter((o) => o < 100 * KIB64).length / offsets.length;
    expect(firstTenth).toBeGreaterThan(0.07);
    expect(firstTenth).toBeLessThan(0.13);
  });

  it('hotspot puts about 90% of the writes in 10% of the device', () => {
    const p = new OffsetPicker('hotspot', 1000, KIB64, seededRandom(3));
    const { start, end } = p.hotRange;
    expect(end - start).toBe(100 * KIB64);
    const offsets = Array.from({ length: 10_000 }, () => p.next());
    const hot = offsets.filter((o) => o >= start && o < end).length / offsets.length;
    expect(hot).toBeGreaterThan(0.88);
    expect(hot).toBeLessThan(0.93);
    expect(offsets.every((o) => o % KIB64 === 0 && o < 1000 * KIB64)).toBe(true);
  });
});

describe('WorkloadRunner', () => {
  it('does not burst above its rate to make up for a stall of the device', async () => {
    // the 5th write stalls for 1.5 s; a runner that made up the missed 6 MiB would then
    // write them as fast as the device takes them
    class StallingDevice extends MemoryDevice {
      calls = 0;
      readonly writesAt: number[] = [];
      override async write(offset: number, data: Uint8Array): Promise<void> {
        if (++this.calls === 5) await sleep(1500);
        this.writesAt.push(Date.now());
        await super.write(offset, data);
      }
    }
    const device = new StallingDevice({ name: 'disk1', capacity: 16 * MIB });
    const runner = new WorkloadRunner({ device, rateMiBps: 4, pattern: 'sequential' });
    runner.start();
    await sleep(2600);
    await runner.stop();
    const resumed = device.writesAt[4];
    if (resumed === undefined) throw new Error('the stalled write never finished');
    // in the 0.5 s after the stall ends: 2 MiB at 4 MiB/s plus at most MAX_CATCH_UP_MS of catching up
    const burst = device.writesAt.filter((t) => t > resumed && t <= resumed + 500).length * KIB64;
    expect(burst).toBeLessThanOrEqual(4 * MIB * ((500 + MAX_CATCH_UP_MS) / 1000) + KIB64);
    expect(burst).toBeGreaterThan(MIB); // it did resume at its rate
  });

  it('writes 64 KiB blocks of random data at about the requested rate, reporting every 250 ms', async () => {
    const device = new MemoryDevice({ name: 'disk1', capacity: 16 * MIB });
    const reports: { at: number; p: WorkloadProgress }[] = [];
    const runner = new WorkloadRunner({ device, rateMiBps: 4, pattern: 'sequential', onProgress: (p) => reports.push({ at: Date.now(), p }) });
    expect(runner.writeSize).toBe(WORKLOAD_WRITE_SIZE);
    const t0 = Date.now();
    runner.start();
    expect(runner.running).toBe(true);
    await sleep(1100);
    const final = await runner.stop();
    const seconds = (Date.now() - t0) / 1000;
    expect(runner.running).toBe(false);
    expect(final.running).toBe(false);
    expect(final.writes * KIB64).toBe(final.bytesWritten);
    const expected = 4 * MIB * seconds;
    expect(final.bytesWritten).toBeGreaterThan(expected * 0.7);
    expect(final.bytesWritten).toBeLessThan(expected * 1.2);
    // every write is 64 KiB, sequential from 0
    const writes = device.log.filter((e) => e.op === 'write');
    expect(writes.length).toBe(final.writes);
    expect(writes.every((w) => w.length === KIB64)).toBe(true);
    expect(writes.slice(0, 3).map((w) => w.offset)).toEqual([0, KIB64, 2 * KIB64]);
    // random data, not zeroes or a repeated block
    const first = device.data.subarray(0, KIB64);
    const second = device.data.subarray(KIB64, 2 * KIB64);
    expect(first.some((b) => b !== 0)).toBe(true);
    expect(first.equals(second)).toBe(false);
    // progress: at most every 250 ms while running, then one final report
    const running = reports.filter((r) => r.p.running);
    expect(running.length).toBeGreaterThanOrEqual(3);
    expect(running.length).toBeLessThanOrEqual(5);
    for (let i = 1; i < running.length; i++) {
      expect((running[i]?.at ?? 0) - (running[i - 1]?.at ?? 0)).toBeGreaterThanOrEqual(240);
    }
    const last = reports[reports.length - 1]?.p;
    expect(last?.running).toBe(false);
    expect(last?.bytesWritten).toBe(final.bytesWritten);
    expect(running[1]?.p.actualMiBps).toBeGreaterThan(2);
    expect(running[1]?.p.actualMiBps).toBeLessThan(6);
    expect(last).toMatchObject({ device: 'disk1', pattern: 'sequential', rateMiBps: 4 });
  });

  it('stops promptly and writes nothing after stop', async () => {
    const device = new MemoryDevice({ name: 'd', capacity: 4 * MIB });
    // 0.05 MiB/s: one 64 KiB write every 1.28 s; stop must not wait for the next one
    const runner = new WorkloadRunner({ device, rateMiBps: 0.05, pattern: 'random', progressIntervalMs: 50 });
    runner.start();
    await sleep(150);
    const t0 = Date.now();
    const final = await runner.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    const count = device.log.length;
    await sleep(1500); // longer than the write interval: a runner that kept going would write again
    expect(device.log.length).toBe(count);
    expect(final.writes).toBe(count);
  });

  it('ends with the error when a write fails (e.g. ENOSPC)', async () => {
    let n = 0;
    const device = new MemoryDevice({ name: 'd', capacity: 4 * MIB, failWith: (op) => (op === 'write' && ++n > 3 ? 'ENOSPC' : undefined) });
    const reports: WorkloadProgress[] = [];
    const runner = new WorkloadRunner({ device, rateMiBps: 100, pattern: 'hotspot', onProgress: (p) => reports.push(p) });
    runner.start();
    await runner.done;
    expect(runner.running).toBe(false);
    const last = reports[reports.length - 1];
    expect(last?.running).toBe(false);
    expect(last?.writes).toBe(3);
    expect(last?.error).toMatch(/ENOSPC/);
  });

  it('rejects bad options', () => {
    const device = new MemoryDevice({ name: 'd', capacity: MIB });
    expect(() => new WorkloadRunner({ device, rateMiBps: 0, pattern: 'random' })).toThrow(/EINVAL/);
    expect(() => new WorkloadRunner({ device, rateMiBps: Number.NaN, pattern: 'random' })).toThrow(/EINVAL/);
    const ro = new MemoryDevice({ name: 'ro', capacity: MIB, readOnly: true });
    expect(() => new WorkloadRunner({ device: ro, rateMiBps: 1, pattern: 'random' })).toThrow(/EROFS/);
    const tiny = new MemoryDevice({ name: 'tiny', capacity: 4096 });
    expect(new WorkloadRunner({ device: tiny, rateMiBps: 1, pattern: 'random' }).writeSize).toBe(4096);
  });
});

describe('WorkloadManager', () => {
  it('runs one workload per device: EALREADY twice, ESRCH when none, stopAll', async () => {
    const notes: WorkloadProgress[] = [];
    const manager = new WorkloadManager((p) => notes.push(p), { progressIntervalMs: 20 });
    const a = new MemoryDevice({ name: 'a', capacity: 4 * MIB });
    const b = new MemoryDevice({ name: 'b', capacity: 4 * MIB });
    manager.start({ name: 'a', device: a, rateMiBps: 10, pattern: 'random' });
    manager.start({ name: 'b', device: b, rateMiBps: 10, pattern: 'sequential' });
    expect(() => manager.start({ name: 'a', device: a, rateMiBps: 1, pattern: 'random' })).toThrow(/^EALREADY: /);
    try {
      manager.start({ name: 'a', device: a, rateMiBps: 1, pattern: 'random' });
    } catch (e) {
      expect((e as BlksnapError).errno).toBe('EALREADY');
    }
    expect(manager.has('a')).toBe(true);
    await sleep(100);
    const stopped = await manager.stop('a');
    expect(stopped.running).toBe(false);
    await expect(manager.stop('a')).rejects.toMatchObject({ errno: 'ESRCH' });
    expect(manager.list().map((p) => p.device)).toEqual(['b']);
    await manager.stopAll();
    expect(manager.list()).toEqual([]);
    expect(notes.some((p) => p.device === 'a' && p.running)).toBe(true);
    expect(notes.filter((p) => p.device === 'b' && !p.running)).toHaveLength(1);
    // a finished workload frees its device for the next one
    manager.start({ name: 'a', device: a, rateMiBps: 1, pattern: 'random' });
    await manager.stopAll();
  });
});
