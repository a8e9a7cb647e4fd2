import { describe, expect, it } from 'vitest';
import {
  FORECAST_WINDOW_MS,
  addSample,
  durationText,
  forecast,
} from '../../../../renderer/src/features/storage/forecast.js';
import type { StorageSample } from '../../../../renderer/src/features/storage/forecast.js';

const MiB = 1024 * 1024;

/** Samples every second of storage filling at `mibPerS` from `startMiB`. */
function filling(seconds: number, mibPerS: number, startMiB = 0): StorageSample[] {
  let samples: StorageSample[] = [];
  for (let t = 0; t <= seconds; t++) samples = addSample(samples, { timeMs: t * 1000, bytes: (startMiB + t * mibPerS) * MiB });
  return samples;
}

describe('storage forecast', () => {
  it('measures the fill rate and the time to the limit at that rate', () => {
    const f = forecast(filling(10, 2), 1000 * MiB); // at 20 MiB after 10 s, 980 MiB left at 2 MiB/s
    expect(f.rateBytesPerS).toBe(2 * MiB);
    expect(f.secondsToLimit).toBe(490);
    expect(f.level).toBe('ok');
  });

  it('warns while there is still time: at 4 MiB/s with 400 MiB left it is 100 s ahead', () => {
    const f = forecast(filling(10, 4, 600), 1040 * MiB);
    expect(f.secondsToLimit).toBe(100);
    expect(f.level).toBe('warn');
  });

  it('a known rate toward a known limit warns at least 30 s before the overflow', () => {
    // 3 MiB/s into a 300 MiB limit: the overflow is at t = 100 s
    let samples: StorageSample[] = [];
    let firstWarning: number | null = null;
    for (let t = 0; t < 100; t++) {
      samples = addSample(samples, { timeMs: t * 1000, bytes: t * 3 * MiB });
      if (firstWarning === null && forecast(samples, 300 * MiB).level === 'warn') firstWarning = t;
    }
    expect(firstWarning).not.toBeNull();
    expect(100 - (firstWarning ?? 100)).toBeGreaterThanOrEqual(30);
  });

  it('measures from where the writes began: idle samples before them do not dilute the rate', () => {
    // 10 s at 50 MiB with nothing written, then 4 MiB/s for 4 s; 100 MiB limit.
    let samples = filling(10, 0, 50);
    for (let t = 11; t <= 14; t++) samples = addSample(samples, { timeMs: t * 1000, bytes: (50 + (t - 10) * 4) * MiB });
    const f = forecast(samples, 100 * MiB);
    // From the first sample that grew (t = 11 s, 54 MiB) to t = 14 s (66 MiB): 4 MiB/s, 34 MiB left.
    expect(f.rateBytesPerS).toBe(4 * MiB);
    expect(f.secondsToLimit).toBe(8.5);
    expect(f.level).toBe('warn');
  });

  it('writes that began between two samples: measured from the first sample that grew, nothing said before a second one', () => {
    // nothing written up to t = 10 s (50 MiB); 4 MiB/s from t = 10.8 s
    let samples = filling(10, 0, 50);
    const at = (t: number): StorageSample => ({ timeMs: t * 1000, bytes: (50 + Math.max(0, t - 10.8) * 4) * MiB });
    samples = addSample(samples, at(11));
    const early = forecast(samples, 100 * MiB);
    expect(early.secondsToLimit).toBeNull();
    expect(early.level).toBe('idle');
    samples = addSample(samples, at(12));
    expect(forecast(samples, 100 * MiB).secondsToLimit).toBeNull(); // 1 s of writing: not yet
    samples = addSample(samples, at(14));
    const f = forecast(samples, 100 * MiB);
    // 4 MiB/s (the interval 11..14 s is all writing), not (62.8 - 50) / 4 = 3.2 MiB/s
    expect(f.rateBytesPerS).toBeCloseTo(4 * MiB, 0);
    expect(f.secondsToLimit).toBeCloseTo((100 - 62.8) / 4, 6);
  });

  it('says no rate from samples close together (an event refresh right after a poll)', () => {
    // idle, then growth seen by two answers 0.1 s apart: the jitter would read as 20 MiB/s
    let samples = filling(5, 0, 10);
    samples = addSample(samples, { timeMs: 6000, bytes: 12 * MiB });
    samples = addSample(samples, { timeMs: 6100, bytes: 14 * MiB });
    expect(forecast(samples, 100 * MiB)).toMatchObject({ secondsToLimit: null, level: 'idle' });
  });

  it('is idle until two samples exist, or while nothing is written', () => {
    expect(forecast([], MiB).level).toBe('idle');
    expect(forecast([{ timeMs: 0, bytes: 0 }], MiB).rateBytesPerS).toBeNull();
    const still = forecast(filling(5, 0, 10), 100 * MiB);
    expect(still.rateBytesPerS).toBe(0);
    expect(still.secondsToLimit).toBeNull();
  });

  it('says full at the limit', () => {
    expect(forecast(filling(3, 1), 3 * MiB).level).toBe('full');
  });

  it('follows the current load: samples older than the window are dropped', () => {
    // 1 MiB/s for 60 s, then 10 MiB/s for 30 s: the rate is the new one
    let samples = filling(60, 1);
    for (let t = 61; t <= 90; t++) samples = addSample(samples, { timeMs: t * 1000, bytes: (60 + (t - 60) * 10) * MiB });
    expect(samples[0]?.timeMs).toBe(90_000 - FORECAST_WINDOW_MS);
    expect(forecast(samples, 10_000 * MiB).rateBytesPerS).toBe(10 * MiB);
  });

  it('ignores a repeated time and restarts when the storage shrinks (a new file)', () => {
    const base = filling(2, 1);
    expect(addSample(base, { timeMs: 2000, bytes: 99 * MiB })).toEqual(base);
    expect(addSample(base, { timeMs: 3000, bytes: 0 })).toEqual([{ timeMs: 3000, bytes: 0 }]);
  });

  it('writes durations in words', () => {
    expect(durationText(45.9)).toBe('45 s');
    expect(durationText(600)).toBe('10 min');
    expect(durationText(3 * 3600 + 5 * 60)).toBe('3 h 5 min');
  });
});
