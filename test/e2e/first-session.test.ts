/**
 * The README's first session, with its defaults, through the UI in browser mode on
 * the embedded engine with its default module parameters: two lab disks of the
 * default size (512 MiB), both ticked; difference storage with the limit the
 * Storage screen suggests; a snapshot created and taken; the write workload with
 * its default device (disk1) and pattern (random, 64 KiB writes).
 *
 * It must survive 10 minutes at the default rate (4 MiB/s, 2400 MiB written). The
 * test shortens that by a higher rate (BLKSNAP_FIRST_SESSION_RATE, default 80 MiB/s),
 * with the storage suggested for that rate, and runs until the workload has written
 * the same 2400 MiB; the snapshot must still be taken, with no error code, no
 * corrupted or no-space event and no alert. BLKSNAP_FIRST_SESSION_RATE=4 runs the
 * real 10 minutes.
 *
 * The arithmetic (written here, not taken from the renderer): 2 × 512 MiB in
 * 256 KiB chunks (blksnap's default chunk_minimum_shift 18) is 4096 chunks. 2400 MiB
 * of random 64 KiB writes is 38,400 writes, which touch all but e^(-38400/4096) of
 * them; with 25% headroom that is more than the devices hold, so the suggestion is
 * the ceiling: every chunk of both devices, 1024 MiB, for 4 MiB/s and any higher
 * rate alike. Each chunk is copied at most once, so no workload can copy more than
 * 1024 MiB, and the default one writes to disk1 alone: at most 512 MiB.
 */
import { describe, expect, it } from 'vitest';
import { useE2eApp } from '../helpers/e2e-app.js';
import { createAndTakeSnapshot, deviceRow, gotoScreen, screenshot, workloadWrittenMiB } from '../helpers/e2e-page.js';
import { hasCommand } from '../helpers/env.js';

const canRun = hasCommand('/usr/bin/chromium');
const DEFAULT_RATE_MIBPS = 4;
const TEN_MINUTES_S = 600;
/** What the default workload writes in 10 minutes. */
const TARGET_MIB = DEFAULT_RATE_MIBPS * TEN_MINUTES_S;
const RATE_MIBPS = Number(process.env['BLKSNAP_FIRST_SESSION_RATE'] ?? '80');
/** Every 256 KiB chunk of the two 512 MiB disks (see the arithmetic above). */
const SUGGESTED_LIMIT_MIB = 1024;
/** The run's deadline: twice the time the rate needs, plus a minute for a busy machine. */
const RUN_TIMEOUT_MS = ((2 * TARGET_MIB) / RATE_MIBPS) * 1000 + 60_000;

describe.skipIf(!canRun)('[chromium] the README first session on its defaults survives 10 minutes of the default workload', () => {
  const app = useE2eApp({ name: 'first-session' });
  const page = app.page;
  const mode = app.mode;

  it(
    `runs ${TARGET_MIB} MiB of the default workload (10 min at ${DEFAULT_RATE_MIBPS} MiB/s) at ${RATE_MIBPS} MiB/s on the suggested storage without the snapshot failing`,
    async () => {
      const p = page();
      const storageDir = mode().storageDir;

      // Devices: Create lab disk twice, as offered (name and size untouched), tick both.
      for (const name of ['disk1', 'disk2']) {
        await expect.poll(() => p.getByTestId('lab-disk-name').inputValue()).toBe(name);
        await p.getByTestId('create-lab-disk').click();
        await deviceRow(p, name).waitFor();
        await expect.poll(() => deviceRow(p, name).textContent()).toContain('512 MiB');
        await p.getByLabel(`Select ${name}`).check();
      }
      // The workload's defaults, but the higher rate, typed before the storage is sized.
      expect(await p.getByTestId('workload-rate').inputValue()).toBe(String(DEFAULT_RATE_MIBPS));
      expect(await p.getByTestId('workload-pattern').inputValue()).toBe('random');
      await p.getByTestId('workload-rate').fill(String(RATE_MIBPS));

      // Difference storage: a directory, the suggested limit as offered, Allocate.
      await gotoScreen(p, 'storage');
      await p.getByTestId('storage-dir').fill(storageDir);
      await p.getByTestId('suggested-limit').filter({ hasText: `at ${RATE_MIBPS} MiB/s` }).waitFor();
      expect(await p.getByTestId('storage-limit').inputValue()).toBe(String(SUGGESTED_LIMIT_MIB));
      await p.getByTestId('allocate').click();
      await p.getByTestId('allocation').filter({ hasText: `Allocated: up to 1 GiB in ${storageDir}` }).waitFor();

      const id = await createAndTakeSnapshot(p);

      // Devices: start the workload on its default device.
      await gotoScreen(p, 'devices');
      expect(await p.getByTestId('workload-device').inputValue()).toBe('disk1');
      await p.getByTestId('start-workload').click();
      await p.getByTestId('workload-progress').filter({ hasText: /^Running/ }).waitFor();
      const started = Date.now();
      for (;;) {
        const written = await workloadWrittenMiB(p);
        if (written >= TARGET_MIB) break;
        if (Date.now() - started > RUN_TIMEOUT_MS) throw new Error(`the workload wrote only ${written} of ${TARGET_MIB} MiB in ${RUN_TIMEOUT_MS / 1000} s`);
        expect(await p.getByTestId('event-alert').count()).toBe(0);
        await p.waitForTimeout(500);
      }
      const seconds = (Date.now() - started) / 1000;
      await p.getByTestId('stop-workload').click();
      await p.getByTestId('workload-progress').filter({ hasText: /^Stopped/ }).waitFor();
      const written = await workloadWrittenMiB(p);
      console.log(`first session: ${written} MiB written in ${seconds.toFixed(1)} s at ${RATE_MIBPS} MiB/s requested`);
      expect(written).toBeGreaterThanOrEqual(TARGET_MIB);

      // The snapshot is still taken and healthy; nothing was reported.
      await gotoScreen(p, 'snapshots');
      const card = p.locator(`[data-testid="snapshot-row"][data-snapshot-id="${id}"]`);
      await card.getByTestId('storage-gauge').waitFor();
      expect(await card.getByTestId('snapshot-state').textContent()).toBe('Taken');
      expect(await card.getByTestId('snapshot-error-code').allTextContents()).toEqual(['0 (none)', '0 (none)']);
      expect(await card.getByTestId('gauge-full').count()).toBe(0);
      const gauge = (await card.getByTestId('storage-gauge').textContent()) ?? '';
      const used = /used ([\d.]+) (KiB|MiB|GiB)/.exec(gauge);
      expect(used).not.toBeNull();
      const unitMiB: Record<string, number> = { KiB: 1 / 1024, MiB: 1, GiB: 1024 };
      const usedMiB = Number(used?.[1]) * (unitMiB[used?.[2] ?? ''] ?? Number.NaN);
      // disk1 alone was written: at most its 512 MiB, and most of it by now.
      expect(usedMiB).toBeLessThanOrEqual(512);
      expect(usedMiB).toBeGreaterThan(256);
      console.log(`first session: ${usedMiB.toFixed(0)} MiB of the ${SUGGESTED_LIMIT_MIB} MiB limit used`);
      expect(await p.getByTestId('event-alert').count()).toBe(0);
      await gotoScreen(p, 'events');
      expect(await p.locator('[data-testid="event-row"][data-code="corrupted"]').count()).toBe(0);
      expect(await p.locator('[data-testid="event-row"][data-code="no_space"]').count()).toBe(0);
      await screenshot(p, 'first-session-after');
    },
    RUN_TIMEOUT_MS + 60_000,
  );
});
