/**
 * Layout of every screen in browser mode at 1400×900 and 1024×700, in the light and
 * the dark colour scheme, with data on every screen (test/helpers/e2e-seed.ts):
 *  - a screenshot of each (test-results/screenshots/layout-<w>x<h>-<scheme>-<screen>.png);
 *  - no interactive control sticks out of the box that clips it, the page is never
 *    wider than the window and nothing scrolls sideways (element boxes against the
 *    viewport and their scroll containers, test/helpers/layout-check.ts);
 *  - axe-core finds no serious or critical violation at 1024×700;
 *  - while the main area scrolls to its end, the header, the alert, the sidebar and
 *    the status line stay in view and the window itself does not scroll.
 */
import { AxeBuilder } from '@axe-core/playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useE2eApp } from '../helpers/e2e-app.js';
import { deviceRow, gotoScreen, screenshot } from '../helpers/e2e-page.js';
import type { ScreenName } from '../helpers/e2e-page.js';
import { seedScreens } from '../helpers/e2e-seed.js';
import type { Seeded } from '../helpers/e2e-seed.js';
import { hasCommand } from '../helpers/env.js';
import { horizontalClipping, scrollMainToEnd } from '../helpers/layout-check.js';

const canRun = hasCommand('/usr/bin/chromium') && hasCommand('qemu-io');
const SCREENS: ScreenName[] = ['devices', 'storage', 'snapshots', 'events', 'heatmap', 'backup', 'catalog'];
const VIEWPORTS = [
  { width: 1400, height: 900 },
  { width: 1024, height: 700 },
];
const BLOCKING = new Set(['serious', 'critical']);

describe.skipIf(!canRun)('[chromium, qemu-io] layout of every screen at 1400×900 and 1024×700, light and dark', () => {
  const app = useE2eApp({
    name: 'layout',
    browser: { viewport: VIEWPORTS[0], colorScheme: 'light' },
    start: { engineParams: { diffStorageMinimum: 2048 } },
  });
  const page = app.page;
  let seeded: Seeded | null = null;

  /** Opens a screen and waits for the data seeded for it. */
  async function showScreen(screen: ScreenName): Promise<void> {
    const p = page();
    await gotoScreen(p, screen);
    if (screen === 'devices') await deviceRow(p, 'disk3').waitFor();
    if (screen === 'snapshots') await p.getByTestId('snapshot-state').filter({ hasText: 'Failed' }).waitFor();
    if (screen === 'storage') await p.getByTestId('storage-gauge').first().waitFor();
    if (screen === 'events') await p.locator('[data-testid="event-row"][data-code="corrupted"]').waitFor();
    if (screen === 'heatmap') {
      await p.getByTestId('heatmap-device').selectOption('disk1');
      await p.getByTestId('heatmap-canvas').waitFor();
    }
    if (screen === 'catalog') {
      await p.getByTestId('catalog-dir').fill(seeded?.backupDir ?? '');
      await p.getByTestId('catalog-load').click();
      await p.getByTestId('catalog-point').first().waitFor();
      // The restore form open too: its field and buttons must fit as well.
      await p.getByTestId('point-restore-button').first().click();
      await p.getByTestId('restore-target').waitFor();
    }
  }

  beforeAll(async () => {
    seeded = await seedScreens(page(), app.mode());
  }, 120_000);

  afterAll(() => {
    const errors = app.browserErrors();
    if (errors.length > 0) console.log(`browser errors:\n${errors.join('\n')}`);
  });

  for (const viewport of VIEWPORTS) {
    for (const scheme of ['light', 'dark'] as const) {
      it(`${viewport.width}×${viewport.height} ${scheme}: no control clipped or sticking out sideways on any screen`, async () => {
        const p = page();
        await p.setViewportSize(viewport);
        await p.emulateMedia({ colorScheme: scheme });
        const problems: string[] = [];
        for (const screen of SCREENS) {
          await showScreen(screen);
          await screenshot(p, `layout-${viewport.width}x${viewport.height}-${scheme}-${screen}`);
          problems.push(...(await horizontalClipping(p)).map((problem) => `${screen}: ${problem}`));
        }
        expect(problems).toEqual([]);
      });
    }
  }

  for (const scheme of ['light', 'dark'] as const) {
    it(`1024×700 ${scheme}: axe-core finds no serious or critical violation on any screen`, async () => {
      const p = page();
      await p.setViewportSize({ width: 1024, height: 700 });
      await p.emulateMedia({ colorScheme: scheme });
      const blocking: string[] = [];
      for (const screen of SCREENS) {
        await showScreen(screen);
        const results = await new AxeBuilder({ page: p }).analyze();
        for (const v of results.violations) {
          if (BLOCKING.has(v.impact ?? '')) blocking.push(`${screen}: [${v.impact}] ${v.id} ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
        }
      }
      expect(blocking).toEqual([]);
    });
  }

  it('the clipping check reports a control planted wider than the main area, and a page wider than the window (harness check)', async () => {
    const p = page();
    await p.setViewportSize({ width: 1024, height: 700 });
    await showScreen('backup');
    await p.evaluate(`(() => {
      const wide = document.createElement('button');
      wide.id = 'planted-wide-button';
      wide.textContent = 'planted';
      wide.style.width = '3000px';
      document.getElementById('main').appendChild(wide);
      const page = document.createElement('div');
      page.id = 'planted-wide-page';
      page.style.cssText = 'position: absolute; left: 0; top: 0; width: 2000px; height: 1px';
      document.body.appendChild(page);
    })()`);
    try {
      const problems = await horizontalClipping(p);
      expect(problems.filter((m) => m.startsWith('button[planted-wide-button]'))).toHaveLength(1);
      expect(problems).toContain('the page is 2000 px wide in a 1024 px viewport');
      expect(problems.some((m) => m.startsWith('main[main]') && m.includes('scrolls sideways'))).toBe(true);
    } finally {
      await p.evaluate(`document.getElementById('planted-wide-button')?.remove(); document.getElementById('planted-wide-page')?.remove()`);
    }
    expect(await horizontalClipping(p)).toEqual([]);
  });

  it('1024×700: the header, the alert, the sidebar and the status line stay in view while the main area scrolls to its end', async () => {
    const p = page();
    await p.setViewportSize({ width: 1024, height: 700 });
    await p.emulateMedia({ colorScheme: 'light' });
    await showScreen('snapshots');
    const view = await scrollMainToEnd(p);
    // The screen is longer than the window, and it is the main area that scrolled.
    expect(view.main.scrollHeight).toBeGreaterThan(view.main.clientHeight);
    expect(view.main.scrollTop).toBeGreaterThan(0);
    expect(view.main.scrollTop + view.main.clientHeight).toBeGreaterThanOrEqual(view.main.scrollHeight - 1);
    expect(view.windowScrollY).toBe(0);
    expect(view.header.top).toBe(0);
    expect(view.alert).not.toBeNull();
    expect(view.alert?.top).toBeGreaterThanOrEqual(view.header.bottom - 1);
    expect(view.alert?.bottom).toBeLessThanOrEqual(view.viewport.height);
    expect(view.nav).toHaveLength(SCREENS.length);
    for (const item of view.nav) {
      expect(item.top).toBeGreaterThanOrEqual(0);
      expect(item.bottom).toBeLessThanOrEqual(view.statusLine.top + 1);
    }
    expect(view.statusLine.bottom).toBeCloseTo(view.viewport.height, 0);
    expect(view.statusLine.top).toBeGreaterThan(view.viewport.height - 60);
    await screenshot(p, 'layout-1024x700-scrolled-snapshots');
    // Another screen opens at its top, not at the offset the last one was scrolled to.
    await gotoScreen(p, 'devices');
    expect(await p.evaluate<number>(`document.getElementById('main').scrollTop`)).toBe(0);
  });
});
