/**
 * State that lives in the helper, and input that never lies, in browser mode on the
 * embedded engine in headless Chromium:
 * - a snapshot with a name on a 1 MiB storage overflows under the write workload (a
 *   corruption); after a reload and in a second tab the storage allocation, the
 *   snapshot's name and times, and the events (the corruption included) are all
 *   still shown; after the snapshot is destroyed, its events stay (ended) until
 *   dismissed, in both tabs;
 * - every bad value of the forms shows its own error next to its field, in the
 *   field's unit, and nothing is sent with another value.
 */
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { useE2eApp } from '../helpers/e2e-app.js';
import { allocateStorage, createLabDisk, deviceRow, gotoScreen, openApp, screenshot, startWorkload } from '../helpers/e2e-page.js';
import { hasCommand } from '../helpers/env.js';

const canRun = hasCommand('/usr/bin/chromium');

/** What a page shows of the state kept by the helper. */
async function expectKeptState(p: Page, storageDir: string, snapshotId: string, ended: boolean): Promise<void> {
  await gotoScreen(p, 'storage');
  await p.getByTestId('allocation').filter({ hasText: `Allocated: up to 1 MiB in ${storageDir}` }).waitFor();
  if (!ended) {
    await gotoScreen(p, 'snapshots');
    const card = p.locator(`[data-testid="snapshot-row"][data-snapshot-id="${snapshotId}"]`);
    expect(await card.getByTestId('snapshot-name').textContent()).toBe('tiny');
    // created and taken, each with its date
    expect(await card.getByTestId('snapshot-times').textContent()).toMatch(/Created \d{4}-\d\d-\d\d \d\d:\d\d:\d\d.*taken \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/i);
  }
  await gotoScreen(p, 'events');
  const group = p.locator(`[data-testid="event-group"][data-snapshot="${snapshotId}"]`);
  await group.waitFor();
  expect(await group.getByRole('heading').textContent()).toMatch(/^tiny Snapshot /);
  expect(await group.getByTestId('event-group-state').textContent()).toMatch(ended ? /^\(ended \d{4}-\d\d-\d\d \d\d:\d\d:\d\d; .*1 corrupted/ : /^\(held; .*1 corrupted/);
  const corrupted = group.locator('[data-testid="event-row"][data-code="corrupted"]');
  expect(await corrupted.count()).toBe(1);
  expect(await corrupted.textContent()).toContain('-28 ENOSPC');
}

describe.skipIf(!canRun)('[chromium] browser mode: state kept by the helper, and input that never lies', () => {
  const app = useE2eApp({ name: 'state' });
  const page = app.page;
  const mode = app.mode;
  let snapshotId = '';

  it('a corruption, the allocation, the name and times survive a reload and show in a second tab', async () => {
    const p = page();
    await createLabDisk(p, 'small', 16);
    await deviceRow(p, 'small').getByLabel('Select small').check();
    await allocateStorage(p, mode().storageDir, 1);
    await gotoScreen(p, 'snapshots');
    await p.getByTestId('create-name').fill('tiny');
    await p.getByTestId('create-snapshot').click();
    const card = p.getByTestId('snapshot-row').first();
    await card.getByTestId('snapshot-state').filter({ hasText: 'Created (not taken)' }).waitFor();
    snapshotId = (await card.getAttribute('data-snapshot-id')) ?? '';
    await card.getByTestId('take-snapshot').click();
    await card.getByTestId('snapshot-state').filter({ hasText: 'Taken' }).waitFor();
    // sequential first writes at 64 MiB/s: the 1 MiB storage overflows at once
    await startWorkload(p, 'small', 64, 'sequential');
    await p.getByTestId('event-alert').filter({ hasText: 'is corrupted (ENOSPC)' }).waitFor({ timeout: 20_000 });
    await p.getByTestId('stop-workload').click();
    await expectKeptState(p, mode().storageDir, snapshotId, false);

    await p.reload();
    await p.getByText('Helper connected').waitFor({ timeout: 20_000 });
    await expectKeptState(p, mode().storageDir, snapshotId, false);
    await screenshot(p, 'state-after-reload');

    const second = await page().context().newPage();
    try {
      await openApp(second, mode().url);
      await expectKeptState(second, mode().storageDir, snapshotId, false);
    } finally {
      await second.close();
    }
  });

  it('a destroyed snapshot\'s events stay, marked ended, in a reload and another tab, until dismissed', async () => {
    const p = page();
    await gotoScreen(p, 'snapshots');
    const card = p.locator(`[data-testid="snapshot-row"][data-snapshot-id="${snapshotId}"]`);
    await card.getByRole('button', { name: 'Destroy' }).click();
    await p.getByRole('dialog').getByRole('button', { name: 'Destroy' }).click();
    await card.waitFor({ state: 'detached' });
    await p.reload();
    await p.getByText('Helper connected').waitFor({ timeout: 20_000 });
    await expectKeptState(p, mode().storageDir, snapshotId, true);

    const second = await page().context().newPage();
    try {
      await openApp(second, mode().url);
      await expectKeptState(second, mode().storageDir, snapshotId, true);
      await screenshot(second, 'state-events-ended');
      // dismissed in the second tab: gone for the first one at its next load too
      await second.getByRole('button', { name: 'Dismiss the events of snapshot tiny' }).click();
      await second.locator(`[data-testid="event-group"][data-snapshot="${snapshotId}"]`).waitFor({ state: 'detached' });
    } finally {
      await second.close();
    }
    await p.reload();
    await p.getByText('Helper connected').waitFor({ timeout: 20_000 });
    await gotoScreen(p, 'events');
    expect(await p.getByTestId('event-group').count()).toBe(0);
  });

  it('every bad value shows its own error next to its field, in its unit, and nothing is sent', async () => {
    const p = page();
    const fieldError = async (testId: string, expected: string): Promise<void> => {
      const el = p.getByTestId(testId);
      await el.waitFor();
      expect(await el.textContent()).toBe(expected);
    };

    // Devices: lab disk name and size, workload rate
    await gotoScreen(p, 'devices');
    const before = await p.getByTestId('device-row').count();
    for (const [name, expected] of [
      ['my disk', '"my disk" cannot be a name: use letters, digits, ".", "_" and "-", starting with a letter or digit (e.g. disk1).'],
      ['small', 'A device named small exists already; disk1 is free.'],
    ] as const) {
      await p.getByTestId('lab-disk-name').fill(name);
      await p.getByTestId('lab-disk-size').fill('16');
      await p.getByTestId('create-lab-disk').click();
      await fieldError('lab-disk-name-error', expected);
    }
    await p.getByTestId('lab-disk-name').fill('disk1');
    for (const [size, expected] of [
      ['0', 'The size must be more than 0 MiB, not 0.'],
      ['-4', 'The size must be more than 0 MiB, not -4.'],
      ['12x', '"12x" is not a number: enter the size in MiB with digits and at most one decimal point (e.g. 64 or 1.5).'],
      ['0.1', '0.1 MiB is not a whole number of 512-byte sectors; the nearest that are: 0.099609375 MiB or 0.10009765625 MiB.'],
      ['', 'Enter the size in MiB.'],
    ] as const) {
      await p.getByTestId('lab-disk-size').fill(size);
      await p.getByTestId('create-lab-disk').click();
      await fieldError('lab-disk-size-error', expected);
      // kept as typed
      expect(await p.getByTestId('lab-disk-size').inputValue()).toBe(size);
    }
    await p.getByTestId('lab-disk-unit').selectOption('GiB');
    await p.getByTestId('lab-disk-size').fill('0.3');
    await p.getByTestId('create-lab-disk').click();
    await fieldError('lab-disk-size-error', '0.3 GiB is not a whole number of 512-byte sectors; the nearest that are: 0.2999997138977051 GiB or 0.3000001907348633 GiB.');
    expect(await p.getByTestId('device-row').count()).toBe(before);

    await p.getByTestId('workload-device').selectOption('small');
    for (const [rate, expected] of [
      ['0', 'The rate must be more than 0 MiB/s, not 0.'],
      ['fast', '"fast" is not a number: enter the rate in MiB/s with digits and at most one decimal point (e.g. 64 or 1.5).'],
      ['200000', 'The rate can be at most 100000 MiB/s, not 200000.'],
    ] as const) {
      await p.getByTestId('workload-rate').fill(rate);
      await p.getByTestId('start-workload').click();
      await fieldError('workload-rate-error', expected);
    }
    expect(await p.getByTestId('workload-progress').textContent()).not.toMatch(/^Running/);

    // Difference storage: directory and limit
    await gotoScreen(p, 'storage');
    await p.getByTestId('storage-dir').fill('var/tmp');
    await p.getByTestId('storage-limit').fill('64');
    await p.getByTestId('allocate').click();
    await fieldError('storage-dir-error', 'The storage directory must be an absolute path starting with /, not "var/tmp".');
    await p.getByTestId('storage-dir').fill(mode().storageDir);
    for (const [limit, expected] of [
      ['0', 'The limit must be more than 0 MiB, not 0.'],
      ['lots', '"lots" is not a number: enter the limit in MiB with digits and at most one decimal point (e.g. 64 or 1.5).'],
      ['0.3', '0.3 MiB is not a whole number of 512-byte sectors; the nearest that are: 0.2998046875 MiB or 0.30029296875 MiB.'],
    ] as const) {
      await p.getByTestId('storage-limit').fill(limit);
      await fieldError('storage-limit-error', expected);
      await p.getByTestId('allocate').click();
      // the allocation kept is still the earlier one: nothing was allocated with another number
      await p.getByTestId('allocation').filter({ hasText: `Allocated: up to 1 MiB in ${mode().storageDir}` }).waitFor();
      expect(await p.getByTestId('storage-limit').inputValue()).toBe(limit);
    }

    // Snapshots: the name
    await gotoScreen(p, 'snapshots');
    await p.getByTestId('create-name').fill('nightly ');
    await fieldError('create-name-error', 'The name starts or ends with a space; remove it (the name is kept as typed).');
    await p.getByTestId('create-name').fill('n'.repeat(70));
    await fieldError('create-name-error', 'A snapshot name has at most 64 characters, this one 70.');
    await p.getByTestId('create-snapshot').click();
    expect(await p.getByTestId('snapshot-row').count()).toBe(0);

    // CBT heatmap: N only takes change numbers the map holds
    await gotoScreen(p, 'heatmap');
    await p.getByTestId('heatmap-device').selectOption('small');
    await p.getByTestId('heatmap-since-mode').check();
    await p.getByTestId('heatmap-since-n').fill('200');
    const nError = p.locator('#heatmap-since-n-error');
    await nError.waitFor();
    expect(await nError.textContent()).toMatch(/^No block has change number 200; N is 0 or one of the change numbers in the map: /);
    await screenshot(p, 'state-input-errors');
  });
});
