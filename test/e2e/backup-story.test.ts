/**
 * The backup story in browser mode, on the embedded engine, driven through the UI in
 * headless Chromium at 1024×700:
 *  1. a 64 MiB lab disk with data written through its NBD URI;
 *  2. the Backup wizard: devices → difference storage (sized from the change) →
 *     snapshot → target folder → kind (full: no chain yet) → run → verify → release;
 *  3. more writes, then the wizard again: the plan offers incremental, the backup
 *     copies the changed blocks only, verify passes; the SHA-256 of the snapshot
 *     image (the take) is recorded before the release, and the disk written again;
 *  4. Catalog: the chain's timeline (full, incremental, verified); Restore of the
 *     incremental to a new image file behind the confirmation naming it: the image's
 *     SHA-256 equals the take's; Browse shows the read-only NBD URI (read with
 *     qemu-img: the same bytes again) and the mount commands.
 * Every step is screenshotted (test-results/screenshots/backup-*.png; copied to
 * docs/screenshots/ with BLKSNAP_UPDATE_SCREENSHOTS=1), has no horizontal overflow
 * at 1024 px, and passes axe (serious and critical violations fail).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AxeBuilder } from '@axe-core/playwright';
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../helpers/browser.js';
import type { BrowserSession } from '../helpers/browser.js';
import { clearFailureScreenshots, createLabDisk, gotoScreen, openApp, publishScreenshots, screenshot } from '../helpers/e2e-page.js';
import { hasCommand } from '../helpers/env.js';
import { buildRenderer } from '../helpers/renderer-build.js';
import { startBrowserMode } from '../helpers/web-server.js';
import type { BrowserMode } from '../helpers/web-server.js';

const run = promisify(execFile);
const canRun = hasCommand('/usr/bin/chromium') && hasCommand('qemu-io') && hasCommand('qemu-img');

const DISK_MIB = 64;
const SHOTS: string[] = [];

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

describe.skipIf(!canRun)('[chromium, qemu-io, qemu-img] browser mode: full and incremental backups through the wizard, verify, restore, browse', () => {
  let staticDir = '';
  let stack: BrowserMode | null = null;
  let session: BrowserSession | null = null;
  let backupDir = '';
  let takeSha = '';

  const page = () => {
    if (session === null) throw new Error('no browser session');
    return session.page;
  };
  const mode = () => {
    if (stack === null) throw new Error('browser mode did not start');
    return stack;
  };
  const diskUri = () => `nbd+unix:///disk1?socket=${mode().nbdSocketPath}`;
  const write = async (pattern: number, offset: string, length: string) => {
    const { stdout } = await run('qemu-io', ['-f', 'raw', '-c', `write -P ${pattern} ${offset} ${length}`, diskUri()]);
    expect(stdout).toContain('wrote');
  };

  /** Screenshot, no horizontal overflow at 1024 px, and no serious or critical axe violation. */
  async function check(p: Page, name: string): Promise<void> {
    await screenshot(p, name);
    SHOTS.push(name);
    const overflow = await p.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    expect(overflow, `${name}: the page is wider than the window`).toBeLessThanOrEqual(0);
    const results = await new AxeBuilder({ page: p }).analyze();
    const blocking = results.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
    expect(blocking, name).toEqual([]);
  }

  async function next(p: Page, step: string): Promise<void> {
    await p.getByTestId('wizard-next').click();
    await p.getByTestId(`wizard-step-${step}`).waitFor();
  }

  /** The wizard from the device step to a verified backup; returns the backup result text. */
  async function wizard(p: Page, round: 'full' | 'incremental'): Promise<string> {
    await gotoScreen(p, 'backup');
    await p.getByTestId('wizard-step-devices').waitFor();
    const box = p.getByTestId('wizard-device-disk1');
    if (!(await box.isChecked())) await box.check();
    if (round === 'full') await check(p, 'backup-devices');
    await next(p, 'storage');
    // The estimate from the change maps fills the limit (at least 64 MiB).
    await expect.poll(async () => Number(await p.getByTestId('wizard-storage-limit').inputValue())).toBeGreaterThanOrEqual(64);
    await p.getByTestId('wizard-storage-dir').fill(mode().storageDir);
    if (round === 'full') await check(p, 'backup-storage');
    await next(p, 'snapshot');
    await p.getByTestId('wizard-take').click();
    await p.getByTestId('wizard-step-target').waitFor({ timeout: 20_000 });
    await p.getByTestId('wizard-backup-dir').fill(backupDir);
    if (round === 'full') await check(p, 'backup-target');
    await next(p, 'kind');
    if (round === 'full') {
      expect(await p.getByTestId('wizard-kind-full').isChecked()).toBe(true);
      expect(await p.getByTestId('wizard-kind-incremental').isDisabled()).toBe(true);
      expect(await p.getByTestId('wizard-reason').textContent()).toMatch(/no earlier backup/);
    } else {
      expect(await p.getByTestId('wizard-kind-incremental').isChecked()).toBe(true);
      expect(await p.getByTestId('wizard-chains').textContent()).toMatch(/1 point, last full/);
    }
    await check(p, `backup-kind-${round}`);
    await next(p, 'run');
    await p.getByTestId('wizard-start').click();
    const job = p.getByTestId('wizard-backup-job');
    await job.and(p.locator('[data-state="done"]')).waitFor({ timeout: 60_000 });
    const points = (await p.getByTestId('wizard-backup-points').textContent()) ?? '';
    // The job bar shows it too, on every screen.
    // The total is what the job had to read: at most the 64 MiB disk for the full,
    // the 3 MiB of changed blocks (a few MiB with chunk rounding) for the incremental.
    const bar = (await p.getByTestId('job-bar').getByTestId('job-progress').first().textContent()) ?? '';
    const progress = /([\d.]+) MiB of ([\d.]+) MiB \(100%\)/.exec(bar);
    expect(progress, bar).not.toBeNull();
    expect(progress?.[1]).toBe(progress?.[2]);
    const total = Number(progress?.[2]);
    if (round === 'full') expect(total).toBeLessThanOrEqual(64);
    else expect(total >= 3 && total < 16, bar).toBe(true);
    await check(p, `backup-run-${round}`);
    await next(p, 'verify');
    await p.getByTestId('wizard-verify').click();
    await p.getByTestId('wizard-verified').waitFor({ timeout: 60_000 });
    if (round === 'full') await check(p, 'backup-verify');
    return points;
  }

  async function release(p: Page, shot: boolean): Promise<void> {
    await next(p, 'release');
    await p.getByTestId('wizard-release').click();
    await p.getByTestId('wizard-released').waitFor({ timeout: 20_000 });
    if (shot) await check(p, 'backup-release');
  }

  beforeAll(async () => {
    await clearFailureScreenshots('failed-backup-');
    staticDir = await mkdtemp(join(tmpdir(), 'blksnap-e2e-dist-'));
    await buildRenderer(staticDir);
    stack = await startBrowserMode({ staticDir, engineParams: { diffStorageMinimum: 2048 } });
    backupDir = join(stack.dir, 'backup');
    await mkdir(backupDir);
    session = await launchBrowser({ viewport: { width: 1024, height: 700 }, colorScheme: 'light' });
    await openApp(session.page, stack.url);
  });

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail' && session !== null) {
      const name = context.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
      await screenshot(session.page, `failed-backup-${name}`).catch(() => undefined);
      console.log(stack?.daemonLog().slice(-3000));
    }
  });

  afterAll(async () => {
    const errors = session?.errors ?? [];
    if (errors.length > 0) console.log(`browser errors:\n${errors.join('\n')}`);
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

  it('creates a 64 MiB lab disk with data on it', async () => {
    const p = page();
    await createLabDisk(p, 'disk1', DISK_MIB);
    await write(0x11, '0', '8M');
    await write(0x12, '40M', '4M');
  });

  it('makes a full backup through the wizard and verifies it', async () => {
    const p = page();
    const points = await wizard(p, 'full');
    expect(points).toMatch(/disk1: full point \S+-full/);
    await release(p, true);
  });

  it('after writes, makes an incremental backup of the changed blocks only, and records the take', async () => {
    const p = page();
    await p.getByTestId('wizard-again').click();
    await write(0x21, '4M', '2M');
    await write(0x22, '60M', '1M');
    const points = await wizard(p, 'incremental');
    expect(points).toMatch(/disk1: incremental point \S+-incremental/);
    // 3 MiB written: the point holds about that much, far less than the 64 MiB disk.
    const written = /incremental point \S+, ([\d.]+) MiB written/.exec(points);
    expect(written, points).not.toBeNull();
    expect(Number(written?.[1])).toBeGreaterThanOrEqual(3);
    expect(Number(written?.[1])).toBeLessThan(16);
    // The take: the snapshot image as the backup read it, then the disk changes again.
    await gotoScreen(p, 'snapshots');
    const uri = (await p.getByTestId('image-nbd-uri').first().textContent()) ?? '';
    expect(uri).toMatch(/^nbd\+unix:\/\//);
    const takeFile = join(mode().dir, 'take.raw');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, takeFile]);
    takeSha = await sha256File(takeFile);
    await rm(takeFile);
    await gotoScreen(p, 'backup');
    await release(p, false);
    await write(0x33, '0', '1M');
  });

  it('shows the chain on the Catalog as a timeline, verified', async () => {
    const p = page();
    await gotoScreen(p, 'catalog');
    await expect.poll(() => p.getByTestId('catalog-dir').inputValue()).toBe(backupDir);
    await p.getByTestId('catalog-load').click();
    const points = p.getByTestId('catalog-point');
    await expect.poll(() => points.count()).toBe(2);
    expect(await points.evaluateAll((els) => els.map((e) => e.getAttribute('data-kind')))).toEqual(['full', 'incremental']);
    expect(await points.nth(1).getByTestId('point-verify').textContent()).toMatch(/^verified/);
    await check(p, 'backup-catalog');
  });

  it('restores the incremental point to a new image equal to the take, after a confirmation naming it', async () => {
    const p = page();
    const point = p.getByTestId('catalog-point').nth(1);
    await point.getByTestId('point-restore-button').click();
    const target = join(mode().dir, 'restored.img');
    await point.getByTestId('restore-target').fill(target);
    await point.getByTestId('restore-submit').click();
    const dialog = p.getByRole('dialog', { name: 'Restore this backup point?' });
    expect(await dialog.getByTestId('restore-dialog-text').textContent()).toContain(target);
    await check(p, 'backup-restore-confirm');
    await dialog.getByTestId('restore-confirm').click();
    const outcome = p.getByTestId('job-bar').getByTestId('job-outcome').filter({ hasText: target });
    await outcome.waitFor({ timeout: 60_000 });
    expect(await outcome.textContent()).toMatch(/SHA-256 matches the backup/);
    expect(await sha256File(target)).toBe(takeSha);
    await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', target, diskUri()]).then(
      () => expect.fail('the disk was written after the take: it must differ from the restored image'),
      (error: { code?: number }) => expect(error.code).toBe(1),
    );
  });

  it('browses the incremental point read-only over NBD: the URI reads the take, with the mount commands', async () => {
    const p = page();
    const point = p.getByTestId('catalog-point').nth(1);
    await point.getByTestId('point-browse-button').click();
    const uri = (await point.getByTestId('browse-uri').textContent()) ?? '';
    expect(uri).toMatch(/^nbd/);
    expect(await point.getByTestId('browse-mount-hint').textContent()).toMatch(/mount -o ro/);
    await point.getByTestId('browse-stop').scrollIntoViewIfNeeded();
    await check(p, 'backup-browse');
    const copy = join(mode().dir, 'browsed.raw');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, copy]);
    expect(await sha256File(copy)).toBe(takeSha);
    await point.getByTestId('browse-stop').click();
    await point.getByTestId('browse-panel').waitFor({ state: 'detached' });
    await publishScreenshots(SHOTS);
  });
});
