/**
 * The real Electron app through Playwright's _electron (playwright-core): the window
 * opens on the renderer, window.blksnap carries exactly the contract, Node is out of
 * reach of the page, and a request reaches a helper. It needs the Electron binary
 * (node_modules/electron's download), a build (npm run build) and the renderer build;
 * where the binary is missing the test reports itself skipped with the reason.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONTRACT_METHODS } from '../../app/shared/contract.js';

const ROOT = resolve(import.meta.dirname, '../..');
const require = createRequire(join(ROOT, 'package.json'));

function findElectron(): { path: string | null; reason: string } {
  let path: unknown;
  try {
    path = require('electron');
  } catch (error) {
    // The package throws "Electron failed to install correctly, please delete ..." when
    // its postinstall download did not happen (no network to GitHub here): that is a
    // missing binary, not something to repair.
    const message = (error as Error).message;
    if (/failed to install correctly/.test(message)) {
      return { path: null, reason: 'the Electron binary is not installed (npm ci could not download it on this machine)' };
    }
    return { path: null, reason: `the electron package cannot be loaded (${message.split('\n')[0]})` };
  }
  if (typeof path !== 'string' || !existsSync(path)) {
    return { path: null, reason: `the Electron binary is not installed (${String(path)} is missing)` };
  }
  for (const file of ['dist/app/main/main.js', 'dist/app/preload/preload.js', 'renderer/dist/index.html']) {
    if (!existsSync(join(ROOT, file))) return { path: null, reason: `${file} is not built (npm run build; vite build of renderer/)` };
  }
  return { path, reason: '' };
}

const electron = findElectron();
const title = `[electron binary] opens the sandboxed window with window.blksnap and reaches the helper${
  electron.path === null ? ` — skipped: ${electron.reason}` : ''
}`;

describe('Electron app (real binary)', () => {
  it.skipIf(electron.path === null)(title, async () => {
    const { _electron } = await import('playwright-core');
    const tmp = mkdtempSync(join(tmpdir(), 'blksnap-electron-'));
    const app = await _electron.launch({
      executablePath: electron.path as string,
      args: [ROOT],
      env: { ...process.env, XDG_RUNTIME_DIR: join(tmp, 'run'), XDG_STATE_HOME: join(tmp, 'state'), ELECTRON_DISABLE_SECURITY_WARNINGS: '1' },
    });
    try {
      const page = await app.firstWindow();
      await page.waitForLoadState('domcontentloaded');
      expect(page.url()).toMatch(/^file:\/\/.*\/renderer\/dist\/index\.html/);
      const keys = await page.evaluate(() => Object.keys((globalThis as unknown as { blksnap: object }).blksnap).sort());
      expect(keys).toEqual(CONTRACT_METHODS.map((m) => m.name).sort());
      const nodeVisible = await page.evaluate(() => typeof (globalThis as { require?: unknown }).require !== 'undefined' || typeof (globalThis as { process?: unknown }).process !== 'undefined');
      expect(nodeVisible).toBe(false);
      const status = await page.evaluate(async () => {
        const api = (globalThis as unknown as { blksnap: { getStatus(): Promise<{ ok: boolean; value?: { appVersion: string } }> } }).blksnap;
        return api.getStatus();
      });
      expect(status.ok).toBe(true);
      const windows = await app.evaluate(({ BrowserWindow }) => BrowserWindow.getAllWindows().length);
      expect(windows).toBe(1);
    } finally {
      await app.close();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
