/**
 * Builds the renderer (renderer/vite.config.ts) for tests. One build is shared by
 * every test file and run: it is kept in .tmp/renderer-build/KEY, where KEY hashes
 * everything the build reads (renderer/ but its dist, app/shared, package-lock.json),
 * so a changed source always means a new build. Test files get their own copy in a
 * directory of theirs, so they still never race other builds of renderer/dist.
 * Concurrent test files wait for the one building (a lock directory).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { cp, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { build } from 'vite';

export const PROJECT_ROOT = join(import.meta.dirname, '..', '..');
export const RENDERER_CONFIG = join(PROJECT_ROOT, 'renderer', 'vite.config.ts');
const CACHE = join(PROJECT_ROOT, '.tmp', 'renderer-build');
/** A lock older than this belongs to a test run that died while building. */
const STALE_LOCK_MS = 5 * 60_000;
const COMPLETE = '.complete';

async function viteBuild(outDir: string): Promise<void> {
  // vitest sets NODE_ENV=test, which would bundle React's development build.
  const nodeEnv = process.env['NODE_ENV'];
  process.env['NODE_ENV'] = 'production';
  try {
    await build({
      configFile: RENDERER_CONFIG,
      mode: 'production',
      // 'error': the build's warnings (chunk sizes) are the renderer's business, not the tests' output.
      logLevel: 'error',
      build: { outDir, emptyOutDir: true },
    });
  } finally {
    process.env['NODE_ENV'] = nodeEnv;
  }
}

function filesUnder(dir: string, skip: string[]): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (skip.includes(path)) continue;
    if (entry.isDirectory()) out.push(...filesUnder(path, skip));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

/** A hash of every input of the renderer build (paths and contents). */
export function rendererSourceKey(): string {
  const hash = createHash('sha256');
  const files = [
    ...filesUnder(join(PROJECT_ROOT, 'renderer'), [join(PROJECT_ROOT, 'renderer', 'dist'), join(PROJECT_ROOT, 'renderer', 'node_modules')]),
    ...filesUnder(join(PROJECT_ROOT, 'app', 'shared'), []),
    join(PROJECT_ROOT, 'package-lock.json'),
  ].sort();
  for (const file of files) {
    hash.update(relative(PROJECT_ROOT, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The shared build of the current sources (built now if no test file has yet). */
export async function sharedRendererBuild(): Promise<string> {
  const key = rendererSourceKey();
  const dir = join(CACHE, key);
  const lock = `${dir}.lock`;
  await mkdir(CACHE, { recursive: true });
  for (;;) {
    if (existsSync(join(dir, COMPLETE))) return dir;
    try {
      await mkdir(lock);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // another test file is building this very key: wait for it (or for its lock to go stale)
      const age = Date.now() - (await stat(lock).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
      if (age > STALE_LOCK_MS) await rm(lock, { recursive: true, force: true });
      else await delay(250);
      continue;
    }
    try {
      if (existsSync(join(dir, COMPLETE))) return dir;
      const building = `${dir}.tmp-${process.pid}`;
      await viteBuild(building);
      await writeFile(join(building, COMPLETE), '');
      await rm(dir, { recursive: true, force: true });
      await rename(building, dir);
      await pruneOldBuilds(key);
      return dir;
    } finally {
      await rm(lock, { recursive: true, force: true });
    }
  }
}

/** Removes the builds of older sources (after an hour: a run on them may still be copying). */
async function pruneOldBuilds(current: string): Promise<void> {
  for (const name of readdirSync(CACHE)) {
    if (name.startsWith(current) || name.endsWith('.lock')) continue;
    const path = join(CACHE, name);
    if (Date.now() - statSync(path).mtimeMs > 60 * 60_000) await rm(path, { recursive: true, force: true });
  }
}

/** The current renderer build, copied into `outDir` (emptied first). */
export async function buildRenderer(outDir: string): Promise<void> {
  const shared = await sharedRendererBuild();
  await rm(outDir, { recursive: true, force: true });
  await cp(shared, outDir, { recursive: true, filter: (source) => !source.endsWith(COMPLETE) });
}
