/**
 * Browser mode end to end: the real server (app/web), a real helper, the built
 * renderer, in a real Chromium. The printed URL's token becomes an HttpOnly cookie and
 * a fragment, the page loads under the strict CSP without errors, leaves the token out
 * of its address, and shows a device the helper has.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { buildRenderer } from '../../helpers/renderer-build.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWebServer } from '../../../app/web/server.js';
import type { WebServer } from '../../../app/web/server.js';
import { hasCommand } from '../../helpers/env.js';
import { fixtureLaunch, tempDirs } from '../bridge/helper-fixture.js';
import type { TempDirs } from '../bridge/helper-fixture.js';

const CHROMIUM = '/usr/bin/chromium';

describe.skipIf(!hasCommand(CHROMIUM))('[chromium] browser mode end to end', () => {
  let dirs: TempDirs;
  let dist = '';
  let server: WebServer;
  let browser: Browser;
  const logs: string[] = [];

  beforeAll(async () => {
    dirs = tempDirs('blksnap-web-e2e-');
    dist = await mkdtemp(join(tmpdir(), 'blksnap-web-renderer-'));
    await buildRenderer(dist);
    server = await startWebServer({
      staticDir: dist,
      helperSocket: dirs.socketPath,
      stateDir: dirs.stateDir,
      launch: fixtureLaunch(dirs),
      log: (line) => logs.push(line),
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    const pid = server?.bridge?.link.startedPid ?? null;
    if (pid !== null) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    if (dist) await rm(dist, { recursive: true, force: true });
    dirs?.cleanup();
  });

  it('opens the printed URL, trades the token for a cookie, and shows the helper\'s devices', async () => {
    const created = await server.bridge!.api.createLabDisk({ name: 'e2edisk', sizeBytes: 4 * 1024 * 1024 });
    expect(created.ok).toBe(true);
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    const response = await page.goto(server.url);
    expect(response?.status()).toBe(200);
    await page.getByText('e2edisk').first().waitFor({ timeout: 15_000 });
    expect(page.url()).not.toContain(server.token);
    const cookies = await context.cookies();
    expect(cookies).toEqual([expect.objectContaining({ name: `blksnap_token_${server.port}`, httpOnly: true, sameSite: 'Strict' })]);
    expect(await page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie)).toBe('');
    // a reload works from the cookie and the stored token alone
    await page.reload();
    await page.getByText('e2edisk').first().waitFor({ timeout: 15_000 });
    expect(problems).toEqual([]);
    // another browser context without the token gets nothing
    const stranger = await browser.newContext();
    const strangerPage = await stranger.newPage();
    expect((await strangerPage.goto(`http://127.0.0.1:${server.port}/`))?.status()).toBe(401);
    await stranger.close();
    await context.close();
    for (const line of logs) expect(line).not.toContain(server.token);
  });
});
