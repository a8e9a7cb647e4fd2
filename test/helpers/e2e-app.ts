/**
 * One browser-mode app per test file, for the Playwright stories: a renderer build in
 * a temporary folder, browser mode with its own helper, and Chromium on its page.
 * `useE2eApp` registers the hooks in the enclosing describe (a screenshot of each
 * failed test, named after it; everything closed and removed at the end).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { launchBrowser } from './browser.js';
import type { BrowserOptions, BrowserSession } from './browser.js';
import { clearFailureScreenshots, openApp, screenshot } from './e2e-page.js';
import { buildRenderer } from './renderer-build.js';
import { startBrowserMode } from './web-server.js';
import type { BrowserMode, BrowserModeOptions } from './web-server.js';

export interface E2eAppOptions {
  /** Names the failure screenshots (`failed-NAME-...`) and the temporary folder. */
  name: string;
  /** Chromium's window (default 1280×900, the system's colour scheme). */
  browser?: BrowserOptions;
  /** Browser mode's options other than the renderer it serves (engine parameters...). */
  start?: Omit<BrowserModeOptions, 'staticDir'>;
}

export interface E2eApp {
  page(): Page;
  mode(): BrowserMode;
  /** Console and page errors seen so far. */
  browserErrors(): string[];
}

export function useE2eApp(options: E2eAppOptions): E2eApp {
  let staticDir = '';
  let stack: BrowserMode | null = null;
  let session: BrowserSession | null = null;

  beforeAll(async () => {
    await clearFailureScreenshots(`failed-${options.name}-`);
    staticDir = await mkdtemp(join(tmpdir(), `blksnap-${options.name}-dist-`));
    await buildRenderer(staticDir);
    stack = await startBrowserMode({ ...options.start, staticDir });
    session = await launchBrowser({ viewport: { width: 1280, height: 900 }, ...options.browser });
    await openApp(session.page, stack.url);
  });

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail' && session !== null) {
      const test = context.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
      await screenshot(session.page, `failed-${options.name}-${test}`).catch(() => undefined);
    }
  });

  afterAll(async () => {
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

  return {
    page: () => {
      if (session === null) throw new Error('no browser session');
      return session.page;
    },
    mode: () => {
      if (stack === null) throw new Error('browser mode did not start');
      return stack;
    },
    browserErrors: () => session?.errors ?? [],
  };
}
