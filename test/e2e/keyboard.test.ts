/**
 * Keyboard focus in browser mode, driven with the keyboard in headless Chromium
 * (data from test/helpers/e2e-seed.ts):
 *  - each dialog (destroy a snapshot, restore a backup point) gives the focus back to
 *    the control that opened it after Escape, after Cancel (Enter and click) and
 *    after its confirm button; when that control is gone (the destroyed snapshot's
 *    card), the focus goes to the screen, never to <body>;
 *  - a button pressed with Enter keeps the focus while it is busy and once the
 *    action made it unavailable (Create lab disk, Create snapshot, Take, Start and
 *    Stop workload, Clear the timeline), and Dismiss on the alert moves it to the screen.
 */
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useE2eApp } from '../helpers/e2e-app.js';
import { deviceRow, gotoScreen } from '../helpers/e2e-page.js';
import { seedScreens } from '../helpers/e2e-seed.js';
import type { Seeded } from '../helpers/e2e-seed.js';
import { hasCommand } from '../helpers/env.js';

const canRun = hasCommand('/usr/bin/chromium') && hasCommand('qemu-io');

interface Focused {
  tag: string;
  id: string | null;
  testId: string | null;
  text: string;
  /** The snapshot card or catalog point holding the element. */
  within: string | null;
}

/** What has the keyboard focus. */
function focused(page: Page): Promise<Focused> {
  return page.evaluate<Focused>(`(() => {
    const el = document.activeElement;
    if (el === null || el === document.body) return { tag: 'body', id: null, testId: null, text: '', within: null };
    const holder = el.closest('[data-snapshot-id], [data-point-id]');
    return {
      tag: el.tagName.toLowerCase(),
      id: el.id || null,
      testId: el.getAttribute('data-testid'),
      text: (el.textContent ?? '').trim(),
      within: holder === null ? null : holder.getAttribute('data-snapshot-id') ?? holder.getAttribute('data-point-id'),
    };
  })()`);
}

/** Gives `button` the focus the way a keyboard user would reach it, then presses Enter. */
async function pressWithEnter(button: Locator): Promise<void> {
  await button.focus();
  await button.page().keyboard.press('Enter');
}

describe.skipIf(!canRun)('[chromium, qemu-io] keyboard focus after dialogs and pressed buttons', () => {
  const app = useE2eApp({ name: 'keyboard', start: { engineParams: { diffStorageMinimum: 2048 } } });
  const page = app.page;
  const mode = app.mode;
  let seeded: Seeded | null = null;
  const data = () => {
    if (seeded === null) throw new Error('not seeded');
    return seeded;
  };

  beforeAll(async () => {
    seeded = await seedScreens(page(), mode());
  }, 120_000);

  afterAll(() => {
    const errors = app.browserErrors();
    if (errors.length > 0) console.log(`browser errors:\n${errors.join('\n')}`);
  });

  describe('the destroy-snapshot dialog', () => {
    const card = () => page().locator(`[data-testid="snapshot-row"][data-snapshot-id="${data().healthyId}"]`);
    const dialog = () => page().getByRole('dialog', { name: 'Destroy snapshot?' });
    const destroyButton = { testId: 'destroy-snapshot', within: '' };

    /** Opens the dialog from the healthy snapshot's Destroy button, with Enter. */
    async function open(): Promise<void> {
      await pressWithEnter(card().getByTestId('destroy-snapshot'));
      await dialog().waitFor();
      expect((await focused(page())).text).toBe('Cancel');
    }

    it('Escape gives the focus back to the Destroy button that opened it', async () => {
      await gotoScreen(page(), 'snapshots');
      destroyButton.within = data().healthyId;
      await open();
      await page().keyboard.press('Escape');
      await dialog().waitFor({ state: 'detached' });
      expect(await focused(page())).toMatchObject(destroyButton);
    });

    it('Cancel, pressed with Enter or clicked, gives the focus back to the Destroy button', async () => {
      await open();
      await page().keyboard.press('Enter');
      await dialog().waitFor({ state: 'detached' });
      expect(await focused(page())).toMatchObject(destroyButton);

      await open();
      await dialog().getByRole('button', { name: 'Cancel' }).click();
      await dialog().waitFor({ state: 'detached' });
      expect(await focused(page())).toMatchObject(destroyButton);
      await card().waitFor();
    });

    it('Enter on Destroy destroys the snapshot; with its card gone the focus is on the screen, not on <body>', async () => {
      await open();
      await page().keyboard.press('Tab');
      expect(await focused(page())).toMatchObject({ testId: 'confirm-destroy' });
      await page().keyboard.press('Enter');
      await dialog().waitFor({ state: 'detached' });
      await card().waitFor({ state: 'detached' });
      await expect.poll(async () => (await focused(page())).id).toBe('main');
    });
  });

  describe('the restore dialog of a backup point', () => {
    const point = () => page().getByTestId('catalog-point').first();
    const dialog = () => page().getByRole('dialog', { name: 'Restore this backup point?' });
    let target = '';

    async function open(): Promise<void> {
      await pressWithEnter(point().getByTestId('restore-submit'));
      await dialog().waitFor();
      expect((await focused(page())).text).toBe('Cancel');
    }

    it('Escape and Cancel give the focus back to the form\'s Restore… button', async () => {
      const p = page();
      await gotoScreen(p, 'catalog');
      await p.getByTestId('catalog-dir').fill(data().backupDir);
      await pressWithEnter(p.getByTestId('catalog-load'));
      await point().waitFor();
      expect(await focused(p)).toMatchObject({ testId: 'catalog-load' });
      await pressWithEnter(point().getByTestId('point-restore-button'));
      target = join(mode().dir, 'restored.img');
      await point().getByTestId('restore-target').fill(target);

      await open();
      await p.keyboard.press('Escape');
      await dialog().waitFor({ state: 'detached' });
      expect(await focused(p)).toMatchObject({ testId: 'restore-submit' });

      await open();
      await p.keyboard.press('Enter');
      await dialog().waitFor({ state: 'detached' });
      expect(await focused(p)).toMatchObject({ testId: 'restore-submit' });
    });

    it('Enter on the confirm button starts the restore, and the focus returns to the point\'s Restore button once the form closes', async () => {
      const p = page();
      await open();
      await p.keyboard.press('Tab');
      expect(await focused(p)).toMatchObject({ testId: 'restore-confirm' });
      await p.keyboard.press('Enter');
      await dialog().waitFor({ state: 'detached' });
      await p.locator('[data-testid="job"]', { hasText: 'restored.img' }).waitFor();
      await point().getByTestId('restore-target').waitFor({ state: 'detached' });
      expect(await focused(p)).toMatchObject({ testId: 'point-restore-button' });
    });
  });

  describe('buttons pressed with Enter keep the focus', () => {
    it('Create lab disk', async () => {
      const p = page();
      await gotoScreen(p, 'devices');
      await p.getByTestId('lab-disk-name').fill('disk4');
      await p.getByTestId('lab-disk-size').fill('16');
      await p.getByLabel('Unit').selectOption('MiB');
      await pressWithEnter(p.getByTestId('create-lab-disk'));
      await deviceRow(p, 'disk4').waitFor();
      expect(await focused(p)).toMatchObject({ testId: 'create-lab-disk' });
    });

    it('Create snapshot, then Take (which stays unavailable once the snapshot is taken)', async () => {
      const p = page();
      for (const name of ['disk1', 'disk2']) await p.getByLabel(`Select ${name}`).uncheck();
      await p.getByLabel('Select disk4').check();
      await gotoScreen(p, 'snapshots');
      const before = await p.getByTestId('snapshot-row').count();
      await pressWithEnter(p.getByTestId('create-snapshot'));
      await expect.poll(() => p.getByTestId('snapshot-row').count()).toBe(before + 1);
      expect(await focused(p)).toMatchObject({ testId: 'create-snapshot' });

      const card = p.getByTestId('snapshot-row').filter({ has: p.getByTestId('snapshot-state').filter({ hasText: 'Created (not taken)' }) });
      const id = await card.getAttribute('data-snapshot-id');
      await pressWithEnter(card.getByTestId('take-snapshot'));
      const taken = p.locator(`[data-testid="snapshot-row"][data-snapshot-id="${id}"]`);
      await taken.getByTestId('snapshot-state').filter({ hasText: /^Taken$/ }).waitFor();
      expect(await focused(p)).toMatchObject({ testId: 'take-snapshot', within: id });
      // Unavailable now, and Enter on it does nothing.
      expect(await taken.getByTestId('take-snapshot').getAttribute('aria-disabled')).toBe('true');
      // ... and looks it (faded as a disabled button).
      expect(await p.evaluate<string>(`getComputedStyle(document.querySelector('[data-snapshot-id="${id}"] [data-testid="take-snapshot"]')).opacity`)).toBe('0.5');
      await p.keyboard.press('Enter');
      expect(await taken.getByTestId('snapshot-state').textContent()).toBe('Taken');
      expect(await focused(p)).toMatchObject({ testId: 'take-snapshot', within: id });
    });

    it('Start workload and Stop workload', async () => {
      const p = page();
      await gotoScreen(p, 'devices');
      await p.getByTestId('workload-device').selectOption('disk4');
      await p.getByTestId('workload-rate').fill('1');
      await pressWithEnter(p.getByTestId('start-workload'));
      await p.getByTestId('workload-progress').filter({ hasText: /^Running/ }).waitFor();
      expect(await focused(p)).toMatchObject({ testId: 'start-workload' });
      await pressWithEnter(p.getByTestId('stop-workload'));
      await p.getByTestId('workload-progress').filter({ hasText: /^Stopped/ }).waitFor();
      expect(await focused(p)).toMatchObject({ testId: 'stop-workload' });
    });

    it('Dismiss on the alert (which goes away) moves it to the screen; Dismiss all keeps it', async () => {
      const p = page();
      await gotoScreen(p, 'events');
      const alert = p.getByTestId('event-alert');
      await pressWithEnter(alert.getByRole('button', { name: 'Dismiss' }));
      await alert.waitFor({ state: 'detached' });
      expect(await focused(p)).toMatchObject({ id: 'main' });

      await p.getByTestId('event-row').first().waitFor();
      await pressWithEnter(p.getByRole('button', { name: 'Dismiss all' }));
      await p.getByTestId('event-row').first().waitFor({ state: 'detached' });
      expect(await focused(p)).toMatchObject({ text: 'Dismiss all' });
    });
  });
});
