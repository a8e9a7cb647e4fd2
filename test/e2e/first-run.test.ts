/**
 * A newcomer's first session in browser mode, on the embedded engine, in headless
 * Chromium: the first-run guide and empty states, errors that keep what was typed
 * (an existing lab disk name, a storage directory that does not exist, with a way to
 * fix it), a block device opened with the engine ([root] loop device), a mounted one
 * that is not offered to the engine and says where it is mounted, and the helper
 * killed under the UI: the banner, a Reconnect that fails while no helper runs and
 * works once one is back. Each state is also checked with axe-core (no serious or
 * critical violations) and captured in test-results/screenshots/first-run-*.png,
 * including a narrow window (1024x700) and the dark theme.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../helpers/browser.js';
import { CLI_BIN } from '../helpers/cli.js';
import type { BrowserSession } from '../helpers/browser.js';
import { clearFailureScreenshots, deviceRow, gotoScreen, openApp, publishScreenshots, screenshot } from '../helpers/e2e-page.js';
import { canUseLoop, hasCommand } from '../helpers/env.js';
import { PROJECT_ROOT, buildRenderer } from '../helpers/renderer-build.js';
import { startBrowserMode } from '../helpers/web-server.js';
import type { BrowserMode } from '../helpers/web-server.js';

const canRun = hasCommand('/usr/bin/chromium');
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function seriousViolations(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).analyze();
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts a helper daemon on the stack's socket and state directory (as test/helpers/web-server.ts does). */
async function startHelper(stack: BrowserMode): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [CLI_BIN, 'daemon', '--socket', stack.socketPath, '--state-dir', stack.stateDir, '--driver', 'embedded', '--param', 'diffStorageMinimum=2048'],
    { stdio: 'ignore', cwd: PROJECT_ROOT },
  );
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the helper exited with ${child.exitCode}`);
    // A SIGKILLed helper leaves its socket file behind: wait for one that answers.
    if (await canConnect(stack.socketPath)) return child;
    await delay(100);
  }
  child.kill('SIGKILL');
  throw new Error('the helper did not listen within 20 s');
}

describe.skipIf(!canRun)('[chromium] browser mode: a first session, errors and a lost helper', () => {
  let staticDir = '';
  let stack: BrowserMode | null = null;
  let session: BrowserSession | null = null;
  let helper: ChildProcess | null = null;
  let loopDevice: string | null = null;
  let loopFile = '';

  const page = () => {
    if (session === null) throw new Error('no browser session');
    return session.page;
  };
  const mode = () => {
    if (stack === null) throw new Error('browser mode did not start');
    return stack;
  };

  beforeAll(async () => {
    await clearFailureScreenshots('failed-first-run-');
    staticDir = await mkdtemp(join(tmpdir(), 'blksnap-first-run-dist-'));
    await buildRenderer(staticDir);
    stack = await startBrowserMode({ staticDir, engineParams: { diffStorageMinimum: 2048 } });
    session = await launchBrowser({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
    await openApp(session.page, stack.url);
  });

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail' && session !== null) {
      const name = context.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
      await screenshot(session.page, `failed-first-run-${name}`).catch(() => undefined);
    }
  });

  afterAll(async () => {
    try {
      await session?.close();
    } finally {
      try {
        await stack?.close();
      } finally {
        if (helper !== null && helper.exitCode === null) helper.kill('SIGTERM');
        if (loopDevice !== null) execFileSync('losetup', ['-d', loopDevice]);
        if (loopFile !== '') await rm(loopFile, { force: true });
        if (staticDir !== '') await rm(staticDir, { recursive: true, force: true });
      }
    }
  });

  it('guides a first start: devices -> storage -> snapshot, with no lab disk yet', async () => {
    const p = page();
    const guide = p.getByTestId('getting-started');
    await guide.waitFor();
    expect(await guide.getByTestId('step-devices').getAttribute('data-done')).toBe('false');
    expect(await guide.getByTestId('step-devices').textContent()).toContain('Create a lab disk');
    await p.getByTestId('devices-empty').waitFor();
    // Whatever block devices the machine has cannot be ticked on the embedded engine.
    const blockRows = p.locator('[data-testid="device-row"][data-selectable="false"]');
    for (const row of await blockRows.all()) expect(await row.locator('input[type="checkbox"]').isDisabled()).toBe(true);
    expect(await p.getByTestId('selection-summary').textContent()).toBe('No device can be snapshotted yet.');
    expect(await seriousViolations(p)).toEqual([]);
    await screenshot(p, 'first-run');
    await p.getByRole('button', { name: 'Go to the lab disk form' }).click();
    expect(await p.evaluate('document.activeElement.id')).toBe('lab-disk-name');
  });

  it('keeps the typed values when a lab disk name is taken, and says why', async () => {
    const p = page();
    await p.getByTestId('lab-disk-name').fill('disk1');
    await p.getByTestId('lab-disk-size').fill('16');
    await p.getByTestId('create-lab-disk').click();
    await deviceRow(p, 'disk1').waitFor();
    await p.getByTestId('lab-disk-name').fill('disk1');
    await p.getByTestId('lab-disk-size').fill('32');
    await p.getByTestId('create-lab-disk').click();
    // refused next to the name before asking the helper, with the first free name
    await p.getByTestId('lab-disk-name-error').filter({ hasText: 'A device named disk1 exists already; disk2 is free.' }).waitFor();
    expect(await p.getByTestId('lab-disk-name').inputValue()).toBe('disk1');
    expect(await p.getByTestId('lab-disk-size').inputValue()).toBe('32');
    await p.getByTestId('devices-empty').waitFor({ state: 'detached' });
    await screenshot(p, 'first-run-error-existing');
  });

  it.skipIf(!canUseLoop)('[root] opens a block device (a loop device) with the engine so that it can be snapshotted', async () => {
    const p = page();
    loopFile = join(mode().dir, '..', `blksnap-first-run-loop-${process.pid}.img`);
    await writeFile(loopFile, '');
    execFileSync('truncate', ['-s', '16M', loopFile]);
    loopDevice = execFileSync('losetup', ['-f', '--show', loopFile]).toString().trim();
    const name = loopDevice.replace('/dev/', '');
    const blockRow = deviceRow(p, loopDevice);
    await blockRow.waitFor({ timeout: 10_000 });
    expect(await blockRow.getByLabel(`Select ${name}`).isDisabled()).toBe(true);
    expect(await blockRow.getByTestId('device-note').textContent()).toContain('open it with the engine first');
    await blockRow.getByRole('button', { name: `Open ${name} with the engine` }).click();
    // Listed once from now on, as the engine device fronting it, which can be ticked.
    const engineRow = deviceRow(p, name);
    await engineRow.waitFor();
    await blockRow.waitFor({ state: 'detached' });
    expect(await engineRow.getByLabel(`Select ${name}`).isDisabled()).toBe(false);
    // The focus moved from the button that went away to the new row's checkbox.
    await expect.poll(() => p.evaluate('document.activeElement?.getAttribute("aria-label")')).toBe(`Select ${name}`);
    expect(await engineRow.getByTestId('device-nbd-uri').textContent()).toContain(`nbd+unix:///${name}?socket=`);
    await p.getByTestId('status-line').filter({ hasText: `${loopDevice} opened with the engine as ${name}` }).waitFor();
    await engineRow.getByRole('button', { name: `Remove ${name}` }).click();
    await blockRow.waitFor();
  });

  it.skipIf(!canUseLoop || !hasCommand('mkfs.ext4'))('[root] offers no "Open with the engine" for a mounted loop device, and its row says where it is mounted', async () => {
    const p = page();
    const dir = await mkdtemp(join(tmpdir(), 'blksnap-first-run-mounted-'));
    const file = join(dir, 'mounted.img');
    const mnt = join(dir, 'mnt');
    let loop: string | null = null;
    let mounted = false;
    try {
      await writeFile(file, '');
      execFileSync('truncate', ['-s', '16M', file]);
      loop = execFileSync('losetup', ['-f', '--show', file]).toString().trim();
      execFileSync('mkfs.ext4', ['-q', loop]);
      execFileSync('mkdir', [mnt]);
      execFileSync('mount', [loop, mnt]);
      mounted = true;
      const name = loop.replace('/dev/', '');
      const row = deviceRow(p, loop);
      // a device nothing of which can be used is collapsed into one line that gives the reason
      const group = p.getByTestId('device-group-toggle').filter({ hasText: `mounted at ${mnt}` });
      await group.waitFor({ timeout: 10_000 });
      expect(await row.isHidden()).toBe(true);
      await group.click();
      await row.getByTestId('device-note').filter({ hasText: `In use, so the engine cannot open it: mounted at ${mnt}.` }).waitFor({ timeout: 10_000 });
      expect(await row.getByLabel(`Select ${name}`).isDisabled()).toBe(true);
      expect(await row.getByRole('button', { name: `Open ${name} with the engine` }).count()).toBe(0);
      await screenshot(p, 'first-run-mounted-device');
    } finally {
      if (mounted) execFileSync('umount', [mnt]);
      if (loop !== null) execFileSync('losetup', ['-d', loop]);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('explains a storage directory that does not exist, keeps the choices, and leads to the fix', async () => {
    const p = page();
    await p.getByLabel('Select disk1').check();
    await gotoScreen(p, 'snapshots');
    // Nothing allocated yet: the panel links to the storage screen, which gets the focus.
    await p.getByTestId('link-storage').click();
    await p.locator('#screen-title', { hasText: 'Difference storage' }).waitFor();
    expect(await p.evaluate('document.activeElement.id')).toBe('main');
    const missing = join(mode().dir, 'no-such-dir');
    await p.getByTestId('storage-dir').fill(missing);
    await p.getByTestId('storage-limit').fill('8');
    await p.getByTestId('allocate').click();
    await p.getByTestId('link-next-snapshot').click();
    await p.getByTestId('create-snapshot').click();
    const error = p.getByTestId('form-error');
    await error.filter({ hasText: 'ENOENT' }).waitFor();
    expect(await p.getByTestId('create-devices').textContent()).toContain('disk1');
    expect(await p.getByTestId('create-storage').textContent()).toContain(missing);
    expect(await seriousViolations(p)).toEqual([]);
    await screenshot(p, 'first-run-storage-error');

    await p.getByRole('button', { name: 'Choose another directory' }).click();
    await p.locator('#screen-title', { hasText: 'Difference storage' }).waitFor();
    expect(await p.getByTestId('storage-dir').inputValue()).toBe(missing);
    await p.getByTestId('storage-dir').fill(mode().storageDir);
    await p.getByTestId('allocate').click();
    await p.getByTestId('link-next-snapshot').click();
    await p.getByTestId('create-snapshot').click();
    await p.getByTestId('snapshot-state').filter({ hasText: 'Created (not taken)' }).waitFor();
    await p.getByTestId('take-hint').waitFor();
    // A snapshot exists: the first-run guide has done its job.
    await gotoScreen(p, 'devices');
    await p.getByTestId('getting-started').waitFor({ state: 'detached' });
  });

  it('shows a narrow window and the dark theme without losing the table', async () => {
    const p = page();
    await p.setViewportSize({ width: 1024, height: 700 });
    await p.emulateMedia({ colorScheme: 'dark' });
    await gotoScreen(p, 'devices');
    const uri = deviceRow(p, 'disk1').getByTestId('device-nbd-uri');
    const box = await uri.boundingBox();
    expect(box).not.toBeNull();
    // The URI wraps inside the window rather than running off its right edge.
    expect((box?.x ?? 0) + (box?.width ?? 0)).toBeLessThanOrEqual(1024);
    expect(await seriousViolations(p)).toEqual([]);
    await screenshot(p, 'first-run-narrow-dark');
    await gotoScreen(p, 'snapshots');
    await screenshot(p, 'first-run-narrow-dark-snapshots');
    await p.setViewportSize({ width: 1280, height: 900 });
    await p.emulateMedia({ colorScheme: 'light' });
  });

  it('shows a banner when the helper is killed; Reconnect says why it fails, then works once a helper is back', async () => {
    const p = page();
    await gotoScreen(p, 'snapshots');
    // The daemon startBrowserMode started (found by its unique socket path).
    const pid = Number(execFileSync('pgrep', ['-f', '-n', '--', `daemon --socket ${mode().socketPath}`]).toString().trim());
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGKILL');
    const banner = p.getByTestId('helper-banner');
    await banner.waitFor({ timeout: 10_000 });
    expect(await banner.getAttribute('role')).toBe('alert');
    expect(await banner.textContent()).toContain('The helper is not connected.');
    await p.getByTestId('stale-note').waitFor();
    expect(await seriousViolations(p)).toEqual([]);
    await screenshot(p, 'first-run-helper-lost');

    // No helper to reconnect to (this server never starts one): the banner stays, with the reason.
    await p.getByTestId('reconnect').click();
    await p.getByTestId('status-line').filter({ hasText: 'Reconnect failed' }).waitFor({ timeout: 15_000 });
    await banner.waitFor();
    // the button pressed keeps the focus while the banner stays
    expect(await p.evaluate('document.activeElement?.dataset?.testid')).toBe('reconnect');

    helper = await startHelper(mode());
    await p.getByTestId('reconnect').focus();
    await p.keyboard.press('Enter');
    await banner.waitFor({ state: 'detached', timeout: 15_000 });
    // the banner (and its button) went away: the focus goes to the screen, not to the page body
    await expect.poll(() => p.evaluate('document.activeElement?.id')).toBe('main');
    await p.getByTestId('helper-state').filter({ hasText: 'Helper connected' }).waitFor();
    await p.getByTestId('stale-note').waitFor({ state: 'detached' });
    // The new helper reopened the lab disk; the lists are reloaded.
    await gotoScreen(p, 'devices');
    await deviceRow(p, 'disk1').waitFor();
    await screenshot(p, 'first-run-reconnected');
    await publishScreenshots(['first-run', 'first-run-helper-lost']);
  });
});
