#!/usr/bin/env node
// blksnap-manager: in a development checkout (the TypeScript sources and tsx are
// present) runs the sources, so a stale dist/ is never used; an installed package
// (no sources) runs the built CLI in dist/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'engine', 'cli', 'main.ts');
const built = join(root, 'dist', 'engine', 'cli', 'main.js');

async function sourceEntry() {
  if (!existsSync(source) || process.env.BLKSNAP_MANAGER_USE_DIST === '1') return null;
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
