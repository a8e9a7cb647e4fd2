/** The job runner: reports at most every 250 ms while running and once at the end; one job per key; bounded history; cancel. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BlksnapError } from '../../../engine/abi/errno.js';
import type { JobState } from '../../../engine/protocol/backup-schemas.js';
import { JOB_HISTORY, JobRunner } from '../../../engine/helper/jobs.js';

const verify = { kind: 'verify' as const, ok: true, points: [] };

afterEach(() => {
  vi.useRealTimers();
});

describe('JobRunner', () => {
  it('reports progress at most every 250 ms, with throughput and ETA, and once when the job ends', async () => {
    vi.useFakeTimers();
    const reports: [number, JobState][] = [];
    const runner = new JobRunner((s) => reports.push([Date.now(), s]));
    let finish!: () => void;
    const started = runner.start({
      kind: 'verify',
      title: 't',
      key: 'k',
      run: async (ctx) => {
        for (let i = 1; i <= 40; i++) {
          await new Promise((r) => setTimeout(r, 25));
          ctx.progress(i * 1000, 40_000);
        }
        await new Promise<void>((r) => (finish = r));
        return verify;
      },
    });
    await vi.advanceTimersByTimeAsync(2000);
    finish();
    await runner.wait(started.jobId, 1000);
    const times = reports.map(([t]) => t);
    for (let i = 1; i < times.length - 1; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(250);
    const running = reports.filter(([, s]) => s.state === 'running').map(([, s]) => s);
    expect(running.length).toBeLessThanOrEqual(1 + Math.ceil(1000 / 250) + 1);
    const last = running.at(-1)!;
    expect(last.done).toBe(40_000);
    // 1000 bytes per 25 ms
    expect(last.bytesPerSecond).toBe(40_000);
    const mid = running.find((s) => s.done > 0 && s.done < 40_000)!;
    expect(mid.etaSeconds).toBe(Math.ceil((40_000 - mid.done) / 40_000));
    expect(reports.at(-1)![1]).toMatchObject({ state: 'done', result: verify, etaSeconds: 0 });
  });

  it('runs one job per key (EBUSY), keeps the last 32, cancels through the signal', async () => {
    const runner = new JobRunner(() => undefined);
    let release!: () => void;
    const blocking = runner.start({ kind: 'backup', title: 'b', key: 'dir', run: () => new Promise((_, reject) => (release = () => reject(new BlksnapError('EIO', 'x')))) });
    expect(() => runner.start({ kind: 'backup', title: 'b2', key: 'dir', run: async () => verify })).toThrow(/already working on dir/);
    release();
    expect((await runner.wait(blocking.jobId, 1000)).error).toEqual({ code: 'EIO', message: 'x' });
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push(runner.start({ kind: 'verify', title: `v${i}`, key: `k${i}`, run: async () => verify }).jobId);
    await runner.wait(ids.at(-1)!, 1000);
    await new Promise((r) => setTimeout(r, 10));
    expect(runner.list().map((j) => j.jobId)).toEqual(ids.slice(-JOB_HISTORY));
    const cancelled = runner.start({
      kind: 'restore',
      title: 'c',
      key: 'c',
      run: (ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new BlksnapError('ECANCELED', 'the restore was cancelled')))),
    });
    runner.cancel(cancelled.jobId);
    expect(await runner.wait(cancelled.jobId, 1000)).toMatchObject({ state: 'cancelled', error: { code: 'ECANCELED' } });
    expect(() => runner.cancel('unknown')).toThrow(/no job unknown/);
  });
});
