/**
 * Page-level steps shared by the end-to-end tests of the UI in browser mode:
 * navigation, screenshots, canvas pixels and the common story steps (lab disks,
 * storage allocation, snapshot create + take). Everything waits for visible state.
 */
import { copyFile, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { PROJECT_ROOT } from './renderer-build.js';

export const SCREENSHOT_DIR = join(PROJECT_ROOT, 'test-results', 'screenshots');
export const DOCS_SCREENSHOT_DIR = join(PROJECT_ROOT, 'docs', 'screenshots');

export type ScreenName = 'devices' | 'storage' | 'snapshots' | 'events' | 'heatmap' | 'backup' | 'catalog';

export const SCREEN_TITLES: Record<ScreenName, string> = {
  devices: 'Devices',
  storage: 'Difference storage',
  snapshots: 'Snapshots',
  events: 'Events',
  heatmap: 'CBT heatmap',
  backup: 'Backup',
  catalog: 'Catalog',
};

/** Opens the app and waits until the helper is connected. */
export async function openApp(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.getByText('Helper connected').waitFor({ timeout: 20_000 });
}

/** Clicks a sidebar entry and waits for the screen's heading. */
export async function gotoScreen(page: Page, screen: ScreenName): Promise<void> {
  await page.getByTestId(`nav-${screen}`).click();
  await page.locator('#screen-title', { hasText: SCREEN_TITLES[screen] }).waitFor();
}

/**
 * A screenshot of the window in test-results/screenshots/<name>.png; returns its path.
 * The window, as the user sees it: only the main area scrolls (the header, banners,
 * sidebar and status line stay put), so a full-page capture would show no more.
 */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, animations: 'disabled', caret: 'hide' });
  return path;
}

/** Removes the screenshots of earlier failed runs (names starting with `prefix`). */
export async function clearFailureScreenshots(prefix: string): Promise<void> {
  const names = await readdir(SCREENSHOT_DIR).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.startsWith(prefix)).map((n) => rm(join(SCREENSHOT_DIR, n), { force: true })));
}

/**
 * Copies screenshots into docs/screenshots/ for the README, only when
 * BLKSNAP_UPDATE_SCREENSHOTS=1 (so ordinary test runs leave the tracked files alone).
 */
export async function publishScreenshots(names: string[]): Promise<boolean> {
  if (process.env['BLKSNAP_UPDATE_SCREENSHOTS'] !== '1') return false;
  await mkdir(DOCS_SCREENSHOT_DIR, { recursive: true });
  for (const name of names) await copyFile(join(SCREENSHOT_DIR, `${name}.png`), join(DOCS_SCREENSHOT_DIR, `${name}.png`));
  return true;
}

export type Rgb = [number, number, number];

/** The colours of several pixels of the heatmap canvas (canvas coordinates), read at once. */
export async function heatmapPixels(page: Page, points: { x: number; y: number }[]): Promise<Rgb[]> {
  const expression = `(() => {
    const canvas = document.querySelector('[data-testid="heatmap-canvas"]');
    if (!(canvas instanceof HTMLCanvasElement)) throw new Error('no heatmap canvas');
    const all = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    return ${JSON.stringify(points.map((p) => [Math.floor(p.x), Math.floor(p.y)]))}.map(([x, y]) => {
      const i = (y * canvas.width + x) * 4;
      return [all[i], all[i + 1], all[i + 2]];
    });
  })()`;
  return page.evaluate<Rgb[]>(expression);
}

/** Creates a lab disk from the Devices screen and waits for its row. */
export async function createLabDisk(page: Page, name: string, sizeMiB: number): Promise<void> {
  await page.getByTestId('lab-disk-name').fill(name);
  await page.getByTestId('lab-disk-size').fill(String(sizeMiB));
  await page.getByLabel('Unit').selectOption('MiB');
  await page.getByTestId('create-lab-disk').click();
  await deviceRow(page, name).waitFor();
}

export function deviceRow(page: Page, id: string) {
  return page.locator(`[data-testid="device-row"][data-device-id="${id}"]`);
}

/** Difference storage screen: type the directory and limit, Allocate, wait for the confirmation. */
export async function allocateStorage(page: Page, directory: string, limitMiB: number): Promise<void> {
  await gotoScreen(page, 'storage');
  await page.getByTestId('storage-dir').fill(directory);
  await page.getByTestId('storage-limit').fill(String(limitMiB));
  await page.getByTestId('allocate').click();
  await page.getByTestId('allocation').filter({ hasText: `Allocated: up to ${limitMiB} MiB in ${directory}` }).waitFor();
}

/** Snapshots screen: Create (selected devices, allocated storage) then Take; returns the snapshot id. */
export async function createAndTakeSnapshot(page: Page): Promise<string> {
  await gotoScreen(page, 'snapshots');
  await page.getByTestId('create-snapshot').click();
  const card = page.getByTestId('snapshot-row').first();
  await card.getByTestId('snapshot-state').filter({ hasText: 'Created (not taken)' }).waitFor();
  const id = await card.getAttribute('data-snapshot-id');
  if (id === null) throw new Error('the snapshot card has no data-snapshot-id');
  await card.getByTestId('take-snapshot').click();
  // Exactly: "Created (not taken)" holds "taken", and hasText ignores case.
  await card.getByTestId('snapshot-state').filter({ hasText: /^Taken$/ }).waitFor();
  return id;
}

/** Devices screen: starts a workload and returns once the progress line says it runs. */
export async function startWorkload(page: Page, device: string, rateMiBps: number, pattern: 'random' | 'sequential' | 'hotspot'): Promise<void> {
  await gotoScreen(page, 'devices');
  await page.getByTestId('workload-device').selectOption(device);
  await page.getByTestId('workload-rate').fill(String(rateMiBps));
  await page.getByTestId('workload-pattern').selectOption(pattern);
  await page.getByTestId('start-workload').click();
  const panel = page.locator('form', { has: page.getByTestId('start-workload') });
  const running = page.getByTestId('workload-progress').filter({ hasText: /^Running/ });
  const failed = panel.getByTestId('form-error');
  await running.or(failed).first().waitFor();
  if (await failed.isVisible()) throw new Error(`the workload did not start: ${(await failed.textContent()) ?? ''}`);
}

/** MiB written as the progress line says (0 when it says nothing yet). */
export async function workloadWrittenMiB(page: Page): Promise<number> {
  const text = (await page.getByTestId('workload-progress').textContent()) ?? '';
  const m = /(\d+) MiB written/.exec(text);
  return m ? Number(m[1]) : 0;
}

export async function stopWorkload(page: Page): Promise<void> {
  await page.getByTestId('stop-workload').click();
  await page.getByTestId('workload-progress').filter({ hasText: /^Stopped/ }).waitFor();
}
