import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, relative } from 'node:path';
import { defineConfig } from 'vitest/config';

const ROOT = import.meta.dirname;
const INCLUDE = ['test/**/*.test.ts', 'test/**/*.test.tsx'];
const EXCLUDE = ['node_modules/**', 'dist/**', 'test/bench/**'];

/**
 * Test files that take system-wide resources (loop devices, FUSE mounts, mounts,
 * device-mapper): found by these words in the file, so a new root test is serialised
 * without anyone keeping a list. They run one at a time, after the others.
 */
const EXCLUSIVE = /\bcanUseLoop\b|\bcanUseFuse\b|\blosetup\b|\bdmsetup\b|helpers\/nbd-loop|'mount'/;

function testFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...testFiles(path));
    else if (/\.test\.tsx?$/.test(entry.name) && !path.startsWith(join('test', 'bench'))) found.push(path);
  }
  return found;
}

const exclusive = testFiles('test').filter((path) => EXCLUSIVE.test(readFileSync(join(ROOT, path), 'utf8')));

/**
 * Most tests wait on child processes, sockets and Chromium rather than compute, so
 * more workers than cores pays: cores + 1 (3 on a 2-core machine).
 * BLKSNAP_TEST_WORKERS=N overrides it.
 */
const workers = Number(process.env['BLKSNAP_TEST_WORKERS']) || availableParallelism() + 1;

const shared = { testTimeout: 60_000, hookTimeout: 60_000, pool: 'forks' as const };

export default defineConfig({
  test: {
    ...shared,
    projects: [
      {
        test: {
          ...shared,
          name: 'parallel',
          include: INCLUDE,
          exclude: [...EXCLUDE, ...exclusive.map((path) => relative(ROOT, join(ROOT, path)))],
          maxWorkers: workers,
        },
      },
      {
        test: {
          ...shared,
          name: 'exclusive',
          include: exclusive,
          exclude: EXCLUDE,
          maxWorkers: 1,
        },
      },
    ],
  },
});
