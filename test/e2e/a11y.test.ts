/**
 * Accessibility of every screen in browser mode (axe-core through
 * @axe-core/playwright), with data present: two lab disks, a snapshot that was taken
 * with changed blocks on the heatmap and then failed on an overflowed storage limit
 * (events, alert, error codes), storage allocated. Each screen is checked in the
 * light and the dark colour scheme, and the confirmation dialog too. Every violation
 * found is printed whatever its impact; serious and critical ones fail the test.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AxeBuilder } from '@axe-core/playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../helpers/browser.js';
import type { BrowserSession } from '../helpers/browser.js';
import { allocateStorage, deviceRow, gotoScreen, openApp, screenshot } from '../helpers/e2e-page.js';
import type { ScreenName } from '../helpers/e2e-page.js';
import { hasCommand } from '../helpers/env.js';
import { buildRenderer } from '../helpers/renderer-build.js';
import { startBrowserMode } from '../helpers/web-server.js';
import type { BrowserMode } from '../helpers/web-server.js';

const run = promisify(execFile);
const canRun = hasCommand('/usr/bin/chromium') && hasCommand('qemu-io');
const MiB = 1024 * 1024;
const BLOCKING = new Set(['serious', 'critical']);

interface Found {
  where: string;
  id: string;
  impact: string;
  help: string;
  targets: string[];
}

const SCREENS: ScreenName[] = ['devices', 'storage', 'snapshots', 'events', 'heatmap', 'backup', 'catalog'];

describe.skipIf(!canRun)('[chromium, qemu-io] accessibility (axe-core) of every screen in browser mode', () => {
  let staticDir = '';
  let stack: BrowserMode | null = null;
  let session: BrowserSession | null = null;
  const found: Found[] = [];

  const page = () => {
    if (session === null) throw new Error('no browser session');
    return session.page;
  };

  /** Runs axe on the page, records every violation, returns the serious and critical ones. */
  async function audit(where: string, record = true): Promise<Found[]> {
    const results = await new AxeBuilder({ page: page() }).analyze();
    const list = results.violations.map((v) => ({
      where,
      id: v.id,
      impact: v.impact ?? 'unknown',
      help: v.help,
      targets: v.nodes.map((n) => n.target.join(' ')),
    }));
    if (record) found.push(...list);
    return list.filter((v) => BLOCKING.has(v.impact));
  }

  beforeAll(async () => {
    staticDir = await mkdtemp(join(tmpdir(), 'blksnap-a11y-dist-'));
    await buildRenderer(staticDir);
    stack = await startBrowserMode({ staticDir, engineParams: { diffStorageMinimum: 2048 } });
    session = await launchBrowser({ colorScheme: 'light' });
    const p = session.page;
    await openApp(p, stack.url);

    // Data through the contract (the page is open, so it receives the events).
    const api = stack.server.bridge?.api;
    if (api === undefined) throw new Error('the web server has no bridge');
    for (const name of ['disk1', 'disk2']) {
      const r = await api.createLabDisk({ name, sizeBytes: 64 * MiB });
      if (!r.ok) throw new Error(`createLabDisk ${name}: ${r.error.code} ${r.error.message}`);
    }
    const created = await api.snapshotCreate({
      devices: ['disk1', 'disk2'],
      storagePath: join(stack.storageDir, 'a11y-diff.img'),
      limitBytes: 4 * MiB,
    });
    if (!created.ok) throw new Error(`snapshotCreate: ${created.error.code} ${created.error.message}`);
    const uri = `nbd+unix:///disk1?socket=${stack.nbdSocketPath}`;
    // Written while tracked, before the take: these blocks show on the heatmap.
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 4M', uri]);
    const taken = await api.snapshotTake({ snapshotId: created.value.snapshotId });
    if (!taken.ok) throw new Error(`snapshotTake: ${taken.error.code} ${taken.error.message}`);
    // Over the 4 MiB limit: no_space and corrupted events.
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x22 16M 16M', uri]);
    await p.getByTestId('event-alert').filter({ hasText: 'corrupted' }).waitFor({ timeout: 15_000 });

    // UI state: both disks selected, storage allocated.
    for (const name of ['disk1', 'disk2']) {
      await deviceRow(p, name).waitFor();
      await p.getByLabel(`Select ${name}`).check();
    }
    await allocateStorage(p, stack.storageDir, 16);
  });

  afterAll(async () => {
    console.log(
      found.length === 0
        ? 'axe-core: no violations on any screen.'
        : `axe-core violations (${found.length}):\n${found
            .map((v) => `  [${v.impact}] ${v.where}: ${v.id} - ${v.help}\n      ${v.targets.slice(0, 5).join('\n      ')}`)
            .join('\n')}`,
    );
    try {
      await session?.close();
    } finally {
      try {
        await stack?.close();
      } finally {
        if (staticDir !== '') await rm(staticDir, { recursive: true, force: true });
      }
    }
  });

  for (const scheme of ['light', 'dark'] as const) {
    for (const screen of SCREENS) {
      it(`${screen} (${scheme}): no serious or critical violations`, async () => {
        const p = page();
        await p.emulateMedia({ colorScheme: scheme });
        await gotoScreen(p, screen);
        if (screen === 'heatmap') {
          await p.getByTestId('heatmap-device').selectOption('disk1');
          await p.getByTestId('heatmap-canvas').waitFor();
          await p.getByTestId('changes-number').filter({ hasText: '1' }).waitFor();
        }
        if (screen === 'snapshots') await p.getByTestId('snapshot-state').filter({ hasText: 'Failed' }).waitFor();
        if (screen === 'events') await p.locator('[data-testid="event-row"][data-code="corrupted"]').waitFor();
        if (screen === 'devices') await deviceRow(p, 'disk2').waitFor();
        if (scheme === 'dark') await screenshot(p, `dark-${screen}`);
        expect(await audit(`${screen} (${scheme})`)).toEqual([]);
      });
    }
  }

  it('the destroy confirmation dialog: no serious or critical violations, focus on Cancel', async () => {
    const p = page();
    await p.emulateMedia({ colorScheme: 'light' });
    await gotoScreen(p, 'snapshots');
    await p.getByTestId('destroy-snapshot').first().click();
    const dialog = p.getByRole('dialog', { name: 'Destroy snapshot?' });
    await dialog.waitFor();
    expect(await p.evaluate<string>('document.activeElement?.textContent ?? ""')).toBe('Cancel');
    expect(await audit('destroy dialog')).toEqual([]);
    await p.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
  });

  it('the audit itself reports a violation planted in the page (harness check)', async () => {
    const p = page();
    await gotoScreen(p, 'backup');
    await p.evaluate(`(() => {
      const input = document.createElement('input');
      input.id = 'planted-unlabelled-input';
      document.getElementById('main').appendChild(input);
    })()`);
    try {
      const blocking = await audit('planted', false);
      expect(blocking.map((v) => v.id)).toContain('label');
      expect(blocking.find((v) => v.id === 'label')?.targets).toEqual(['#planted-unlabelled-input']);
    } finally {
      await p.evaluate(`document.getElementById('planted-unlabelled-input')?.remove()`);
    }
  });
});
