/** The built engine (dist/engine) the guest runs: rebuilt with tsc when a source under engine/ is newer. */
import { execFile } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './initramfs.js';

const run = promisify(execFile);

async function newestMtime(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    newest = Math.max(newest, (await stat(join(entry.parentPath, entry.name))).mtimeMs);
  }
  return newest;
}

/** Builds dist/ when it is missing or older than engine/; returns the build time in ms (0: already fresh). */
export async function ensureDist(): Promise<number> {
  const marker = join(REPO_ROOT, 'dist', 'engine', 'kernel', 'index.js');
  const built = await stat(marker).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  if (built > (await newestMtime(join(REPO_ROOT, 'engine')))) return 0;
  const started = Date.now();
  await run(join(REPO_ROOT, 'node_modules', '.bin', 'tsc'), ['-p', join(REPO_ROOT, 'tsconfig.build.json')], { cwd: REPO_ROOT });
  return Date.now() - started;
}
