/** Test helpers: a bridge over a real helper in a temp dir, stopped (helper too) after each test. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { createBridge } from '../../../app/bridge/bridge.js';
import type { Bridge } from '../../../app/bridge/bridge.js';
import type { Result } from '../../../app/shared/result.js';
import { fixtureLaunch, tempDirs } from './helper-fixture.js';
import type { TempDirs } from './helper-fixture.js';

export function value<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`expected ok, got ${result.error.code}: ${result.error.message} ${result.error.detail ?? ''}`);
  return result.value;
}

const cleanups: (() => Promise<void> | void)[] = [];

/** Registers the after-each cleanup of the bridges made by setupBridge (call once per test file). */
export function cleanUpBridges(): void {
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });
}

/** Registers a cleanup that runs after the current test. */
export function afterThisTest(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

/** A bridge (not started) whose helper is started by the fixture launcher, or never (`launch: null`). */
export function setupBridge(
  launch: 'fixture' | null = 'fixture',
  extra: Partial<Parameters<typeof createBridge>[0]> = {},
): { bridge: Bridge; dirs: TempDirs } {
  const dirs = tempDirs();
  const bridge = createBridge({
    socketPath: dirs.socketPath,
    launch: launch === 'fixture' ? fixtureLaunch(dirs) : null,
    logPath: dirs.logPath,
    appVersion: '9.8.7',
    labDir: join(dirs.root, 'lab'),
    startTimeoutMs: 30_000,
    ...extra,
  });
  cleanups.push(() => dirs.cleanup());
  cleanups.push(async () => {
    bridge.close();
    const pid = bridge.link.startedPid;
    if (pid !== null) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
      for (let i = 0; i < 50 && existsSync(dirs.socketPath); i++) await new Promise((r) => setTimeout(r, 100));
    }
  });
  return { bridge, dirs };
}
