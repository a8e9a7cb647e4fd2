#!/usr/bin/env node
// blksnap-manager: runs the built CLI in dist/ when it is up to date (every engine/
// source has a compiled file at least as new: `npm run build`), which starts in a
// fraction of the time; in a development checkout whose dist/ is missing or older
// than a source, runs the TypeScript sources through tsx, so a stale build is never
// used. An installed package (no sources) runs dist/.
// BLKSNAP_MANAGER_USE_DIST=1 forces the build, =0 forces the sources.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'engine', 'cli', 'main.ts');
const built = join(root, 'dist', 'engine', 'cli', 'main.js');

/** True when every engine/**.ts has its dist/engine/**.js, modified no earlier. */
function distUpToDate(dir = 'engine') {
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const rel = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!distUpToDate(rel)) return false;
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      let out;
      try {
        out = statSync(join(root, 'dist', rel.slice(0, -3) + '.js')).mtimeMs;
      } catch {
        return false;
      }
      if (out < statSync(join(root, rel)).mtimeMs) return false;
    }
  }
  return true;
}

async function sourceEntry() {
  const force = process.env.BLKSNAP_MANAGER_USE_DIST;
  if (!existsSync(source) || force === '1') return null;
  if (force !== '0' && existsSync(built) && distUpToDate()) return null;
  try {
    const { register } = await import('tsx/esm/api');
    register();
    return source;
  } catch {
    return null; // tsx not installed (production dependencies only)
  }
}

const entry = (await sourceEntry()) ?? built;
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(process.argv.slice(2));
