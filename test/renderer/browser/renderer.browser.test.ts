/**
 * The built renderer in a real Chromium, in browser mode against a mock server that
 * speaks the wire format of app/shared/wire.ts, under a strict CSP: the whole flow of
 * the screens, the heatmap of a 2,097,152-block map, the alert banner, axe checks.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { buildRenderer } from '../../helpers/renderer-build.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCommand } from '../../helpers/env.js';
import { startMockServer } from './mock-server.js';
import type { MockServer } from './mock-server.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'secret-token';
const hasChromium = hasCommand(CHROMIUM);

describe.skipIf(!hasChromium)('[chromium] renderer in browser mode', () => {
  let dist = '';
  let server: MockServer;
  let browser: Browser;

  beforeAll(async () => {
    dist = await mkdtemp(join(tmpdir(), 'blksnap-renderer-'));
    await buildRenderer(dist);
    server = await startMockServer(dist, TOKEN);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dist) await rm(dist, { recursive: true, force: true });
  });

  async function open(token: string): Promise<{ page: Page; problems: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    // the browser may close first (afterAll): a context already gone is fine
    page.on('close', () => void context.close().catch(() => undefined));
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    await page.goto(`${server.url}#token=${token}`);
    return { page, problems };
  }

  async function seriousAxeViolations(page: Page): Promise<string[]> {
    const result = await new AxeBuilder({ page }).analyze();
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  }

  it('drives devices -> storage -> snapshot -> events -> heatmap -> destroy under a strict CSP', async () => {
    const { page, problems } = await open(TOKEN);
    await expect.poll(() => page.getByTestId('device-row').count()).toBe(1);
    // The token left the address bar and stays in sessionStorage.
    expect(page.url()).toBe(server.url);
    expect(await page.evaluate(() => sessionStorage.getItem('blksnap-manager.token'))).toBe(TOKEN);
    await expect.poll(() => page.getByTestId('helper-state').textContent()).toMatch(/connected · embedded engine/);
    expect(await seriousAxeViolations(page)).toEqual([]);

    await page.getByLabel('Name', { exact: true }).fill('disk2');
    await page.getByLabel('Size', { exact: true }).fill('256');
    await page.getByRole('button', { name: 'Create lab disk' }).click();
    await expect.poll(() => page.getByTestId('device-row').count()).toBe(2);

    await page.getByRole('button', { name: 'Start workload' }).click();
    await expect.poll(() => page.getByTestId('workload-progress').textContent()).toMatch(/5 MiB written in 1 s at 4 MiB\/s/);

    await page.getByLabel('Select all devices').check();
    await page.getByRole('button', { name: 'Difference storage' }).click();
    await page.getByLabel('Use /var/tmp').check();
    await page.getByRole('button', { name: 'Allocate' }).click();
    await expect.poll(() => page.getByTestId('allocation').textContent()).toMatch(/in \/var\/tmp/);
    expect(await seriousAxeViolations(page)).toEqual([]);

    await page.getByRole('button', { name: 'Snapshots' }).click();
    await page.getByRole('button', { name: 'Create snapshot' }).click();
    await expect.poll(() => page.getByTestId('snapshot-state').textContent()).toBe('Created (not taken)');
    const create = server.calls.find((c) => c.method === 'snapshotCreate');
    expect(create?.params).toMatchObject({ devices: ['disk1', 'disk2'] });
    await page.getByRole('button', { name: 'Take' }).click();
    await expect.poll(() => page.getByTestId('snapshot-state').textContent()).toBe('Taken');
    expect(await page.getByTestId('image-nbd-uri').allTextContents()).toEqual([
      'nbd://127.0.0.1:10809/blksnap-image0',
      'nbd://127.0.0.1:10809/blksnap-image1',
    ]);
    await expect.poll(() => page.getByTestId('storage-gauge').textContent()).toMatch(/used 12 MiB \/ allocated 64 MiB/);
    expect(await seriousAxeViolations(page)).toEqual([]);

    // Events arrive while the Heatmap screen is open; the banner shows on any screen.
    await page.getByRole('button', { name: 'CBT heatmap' }).click();
    const snapshotId = String((server.calls.find((c) => c.method === 'snapshotTake')?.params as { snapshotId: string }).snapshotId);
    server.emit('onSnapshotEvent', { code: 'low_free_space', snapshotId, timeMs: Date.now(), requestedSectors: 2048 });
    server.emit('onSnapshotEvent', {
      code: 'corrupted',
      snapshotId,
      timeMs: Date.now(),
      device: 'disk2',
      devMajor: 259,
      devMinor: 1,
      errCode: -28,
    });
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/disk2 is corrupted \(ENOSPC\)/);

    await expect.poll(() => page.getByTestId('generation-id').textContent()).toBe('5e1f3a6c-9b2d-4c7e-8f10-1234567890ab');
    const canvas = page.getByTestId('heatmap-canvas');
    expect(await canvas.getAttribute('data-blocks-per-cell')).toBe('8');
    // The canvas shows change colours (not only the background / never-written grey).
    const colours = await canvas.evaluate((el) => {
      const c = el as HTMLCanvasElement;
      const data = c.getContext('2d')?.getImageData(0, 0, c.width, c.height).data;
      const seen = new Set<number>();
      if (data) for (let i = 0; i < data.length; i += 4) seen.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
      return seen.size;
    });
    expect(colours).toBeGreaterThanOrEqual(3);
    // Blocks with change number 3 (> N = 2): every 1031st block with i % 3 == 2, plus 50,000 in a run.
    const predicted = Number(await page.getByTestId('predicted-size').getAttribute('data-bytes'));
    expect(predicted).toBeGreaterThan(50_000 * 4096);
    await canvas.hover({ position: { x: 100, y: 50 } });
    await expect.poll(() => page.getByTestId('heatmap-tooltip').textContent()).toMatch(/Blocks \d+–\d+.*Bytes/);
    await page.getByRole('button', { name: 'Zoom in' }).click();
    expect(await canvas.getAttribute('data-blocks-per-cell')).toBe('4');
    expect(await seriousAxeViolations(page)).toEqual([]);

    // Screen names stay unique accessible names while the banner is up.
    await page.getByRole('button', { name: 'Events' }).click();
    expect(await page.getByTestId('event-row').count()).toBe(2);
    expect(await seriousAxeViolations(page)).toEqual([]);

    await page.getByRole('button', { name: 'Snapshots' }).click();
    await page.getByRole('button', { name: 'Destroy' }).click();
    await expect.poll(() => page.getByRole('dialog').textContent()).toMatch(/disk1, disk2/);
    await page.getByRole('dialog').getByRole('button', { name: 'Destroy' }).click();
    await expect.poll(() => page.getByTestId('snapshot-row').count()).toBe(0);

    // Dark theme follows the system preference.
    const light = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    await page.emulateMedia({ colorScheme: 'dark' });
    const dark = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    expect(dark).not.toBe(light);

    expect(problems).toEqual([]);
    await page.close();
  });

  it('reports a refused token instead of retrying', async () => {
    const { page } = await open('wrong');
    await expect.poll(() => page.getByTestId('helper-state').textContent()).toMatch(/stopped/);
    await expect.poll(() => page.getByRole('button', { name: 'Reconnect' }).count()).toBe(1);
    await page.close();
  });
});
