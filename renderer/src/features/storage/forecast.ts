/**
 * The live forecast of a held snapshot's difference storage (pure): from samples of
 * its used bytes over time, the fill rate and the time left until the limit at that
 * rate. It warns while there is still time to act, not once the storage is full.
 */

export interface StorageSample {
  timeMs: number;
  bytes: number;
}

/** Samples older than this (against the newest) are dropped: the rate follows the current load. */
export const FORECAST_WINDOW_MS = 20_000;
/**
 * No rate from less than this much writing: samples come every second and also on
 * every event and action (some a tenth of a second apart), and a rate over so short a
 * span is mostly the jitter of when the answers arrived.
 */
export const MIN_RATE_SPAN_MS = 3000;
/** Warn when the limit is this close at the current rate. */
export const FORECAST_WARN_SECONDS = 120;
/** At most this many samples are kept per snapshot. */
export const MAX_SAMPLES = 64;

/** `samples` plus `next`, newest last, limited to the window (a shrink restarts the series). */
export function addSample(samples: readonly StorageSample[], next: StorageSample): StorageSample[] {
  const last = samples[samples.length - 1];
  if (last !== undefined && (next.timeMs <= last.timeMs || next.bytes < last.bytes)) {
    return next.timeMs <= last.timeMs ? [...samples] : [next];
  }
  const kept = samples.filter((s) => next.timeMs - s.timeMs <= FORECAST_WINDOW_MS);
  kept.push(next);
  return kept.slice(-MAX_SAMPLES);
}

export type ForecastLevel = 'idle' | 'ok' | 'warn' | 'full';

export interface StorageForecast {
  /** Bytes per second over the window; null until two samples exist. */
  rateBytesPerS: number | null;
  /** Seconds until the limit at that rate; null when not growing. */
  secondsToLimit: number | null;
  level: ForecastLevel;
}

export function forecast(samples: readonly StorageSample[], limitBytes: number): StorageForecast {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (first === undefined || last === undefined) return { rateBytesPerS: null, secondsToLimit: null, level: 'idle' };
  if (limitBytes > 0 && last.bytes >= limitBytes) return { rateBytesPerS: null, secondsToLimit: 0, level: 'full' };
  // Samples taken before the writes began (still at the first one's level) would dilute
  // the rate and promise more time than is left. The writes began somewhere between the
  // last of them and the first that grew, so measure from the first that grew (the
  // rate is then that of whole intervals of writing) and say nothing until a second
  // one follows it.
  let from = 0;
  while (from + 1 < samples.length && samples[from + 1]?.bytes === first.bytes) from++;
  const start = from > 0 ? samples[from + 1] : first;
  if (start === undefined) return { rateBytesPerS: 0, secondsToLimit: null, level: 'idle' };
  const span = (last.timeMs - start.timeMs) / 1000;
  if (span <= 0) return { rateBytesPerS: null, secondsToLimit: null, level: 'idle' };
  if (last.timeMs - start.timeMs < MIN_RATE_SPAN_MS) {
    // growing, but not measured long enough to say how fast
    return { rateBytesPerS: last.bytes > start.bytes ? null : 0, secondsToLimit: null, level: 'idle' };
  }
  const rate = Math.max(0, (last.bytes - start.bytes) / span);
  if (rate === 0 || limitBytes <= 0) return { rateBytesPerS: rate, secondsToLimit: null, level: 'idle' };
  const seconds = (limitBytes - last.bytes) / rate;
  return { rateBytesPerS: rate, secondsToLimit: seconds, level: seconds <= FORECAST_WARN_SECONDS ? 'warn' : 'ok' };
}

/** "45 s", "12 min", "3 h 5 min". */
export function durationText(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 120) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 120) return `${min} min`;
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}
