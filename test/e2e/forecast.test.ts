/**
 * The storage forecast warns in time: a write workload at a known rate (sequential
 * 64 KiB writes at 4 MiB/s, so each 256 KiB chunk is copied once and the difference
 * storage fills at 4 MiB/s) on a snapshot whose storage limit is 160 MiB overflows
 * about 40 s after it starts. The Storage screen's forecast must warn at least 30 s
 * before the overflow (the alert of the no-space / corrupted event), and the time
 * left it states when it first warns must match the time that was actually left.
 * Through the UI in browser mode on the embedded engine with its default parameters.
 */
import { describe, expect, it } from 'vitest';
import { useE2eApp } from '../helpers/e2e-app.js';
import { allocateStorage, createAndTakeSnapshot, createLabDisk, gotoScreen, screenshot, startWorkload, stopWorkload } from '../helpers/e2e-page.js';
import { hasCommand } from '../helpers/env.js';

const canRun = hasCommand('/usr/bin/chromium');
const RATE_MIBPS = 4;
const LIMIT_MIB = 160;
const DISK_MIB = 256;
const WARN_AHEAD_S = 30;

/** Seconds in the forecast's "reached in about N s / N min" (whole minutes rounded down). */
function statedSeconds(text: string): number {
  const m = /reached in about (\d+) (s|min)\b/.exec(text);
  if (m === null) throw new Error(`no time left in "${text}"`);
  return Number(m[1]) * (m[2] === 'min' ? 60 : 1);
}

describe.skipIf(!canRun)('[chromium] the storage forecast warns at least 30 s before an overflow at a known write rate', () => {
  const app = useE2eApp({ name: 'forecast' });
  const page = app.page;
  const mode = app.mode;

  it(`sequential writes at ${RATE_MIBPS} MiB/s into a ${LIMIT_MIB} MiB limit: the warning comes ≥ ${WARN_AHEAD_S} s before the overflow and states the time left`, async () => {
    const p = page();
    await createLabDisk(p, 'disk1', DISK_MIB);
    await p.getByLabel('Select disk1').check();
    await allocateStorage(p, mode().storageDir, LIMIT_MIB);
    await createAndTakeSnapshot(p);
    await startWorkload(p, 'disk1', RATE_MIBPS, 'sequential');
    const started = Date.now();

    await gotoScreen(p, 'storage');
    const forecastLine = p.getByTestId('storage-forecast');
    const alert = p.getByTestId('event-alert');
    let warnedAt: number | null = null;
    let warnedText = '';
    let overflowAt: number | null = null;
    /** What the forecast said when, while it warned. */
    const readings: { at: number; stated: number }[] = [];
    const deadline = started + 120_000;
    while (overflowAt === null) {
      if (Date.now() > deadline) throw new Error('no overflow within 120 s');
      const level = await forecastLine.getAttribute('data-level', { timeout: 1000 }).catch(() => null);
      if (level === 'warn') {
        const text = (await forecastLine.textContent({ timeout: 1000 }).catch(() => null)) ?? '';
        if (/reached in about/.test(text)) readings.push({ at: Date.now(), stated: statedSeconds(text) });
        if (warnedAt === null) {
          warnedAt = Date.now();
          warnedText = text;
          await screenshot(p, 'forecast-warning');
        }
      }
      if ((await alert.count()) > 0) overflowAt = Date.now();
      else await p.waitForTimeout(250);
    }
    // The overflow's first alert: the no_space event ("the difference storage is
    // full") or the corruption it leads to (ENOSPC), whichever the page sees first.
    expect(await alert.textContent()).toMatch(/difference storage is full|ENOSPC|corrupted/i);
    await gotoScreen(p, 'devices');
    await stopWorkload(p);

    expect(warnedAt).not.toBeNull();
    const ahead = (overflowAt - (warnedAt ?? overflowAt)) / 1000;
    console.log(
      `forecast: warned ${(((warnedAt ?? 0) - started) / 1000).toFixed(1)} s after the workload started, ${ahead.toFixed(1)} s before the overflow; it said: ${warnedText}`,
    );
    expect(ahead).toBeGreaterThanOrEqual(WARN_AHEAD_S);
    const end = overflowAt;
    const left = (at: number): number => (end - at) / 1000;
    // The first warning, measured over a second or two of writes, may be early, never
    // late: it does not promise more time than was left.
    expect(statedSeconds(warnedText)).toBeLessThanOrEqual(ahead + 5);
    // Once 10 s of writes are measured, the time it states is the time that was left,
    // within a quarter (or 5 s near the end).
    const settled = readings.filter((r) => r.at - started >= 10_000);
    expect(settled.length).toBeGreaterThan(10);
    const off = settled.filter((r) => Math.abs(r.stated - left(r.at)) > Math.max(5, left(r.at) / 4));
    expect(off.map((r) => `at ${((r.at - started) / 1000).toFixed(1)} s it said ${r.stated} s, ${left(r.at).toFixed(1)} s were left`)).toEqual([]);
  }, 180_000);
});
