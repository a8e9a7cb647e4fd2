/**
 * Builds the VAL-7.0 modules (bdevfilter.ko, veeamblksnap.ko) from a copy of the
 * peers source with the kernel's kbuild, and caches the result by kernel release
 * and source hash, so a rerun reuses them. ../shared is never written.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface BuiltModules {
  bdevfilter: string;
  veeamblksnap: string;
  /** True when the cache held them. */
  cached: boolean;
  ms: number;
}

async function sourceHash(dir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const name of (await readdir(dir)).sort()) {
    hash.update(name).update('\0').update(await readFile(join(dir, name))).update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

export function moduleCacheRoot(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'blksnap-manager', 'val7-module');
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export async function buildVal7Modules(sourceDir: string, kbuild: string, kernelRelease: string): Promise<BuiltModules> {
  const started = Date.now();
  const dir = join(moduleCacheRoot(), `${kernelRelease}-${await sourceHash(sourceDir)}`);
  const result = (cached: boolean): BuiltModules => ({
    bdevfilter: join(dir, 'bdevfilter.ko'),
    veeamblksnap: join(dir, 'veeamblksnap.ko'),
    cached,
    ms: Date.now() - started,
  });
  if ((await exists(join(dir, 'bdevfilter.ko'))) && (await exists(join(dir, 'veeamblksnap.ko')))) return result(true);

  await mkdir(moduleCacheRoot(), { recursive: true });
  // the build directory sits beside the cache entry, so the finished entry is one rename
  const work = await mkdtemp(join(moduleCacheRoot(), '.build-'));
  try {
    const src = join(work, 'module');
    await cp(sourceDir, src, { recursive: true });
    try {
      await run('make', ['-C', kbuild, `M=${src}`, 'modules', '-j2'], { maxBuffer: 16 << 20 });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string };
      throw new Error(`building the VAL-7.0 module failed:\n${(e.stderr ?? '').slice(-4000)}${(e.stdout ?? '').slice(-2000)}`, { cause: err });
    }
    const staged = join(work, 'out');
    await mkdir(staged);
    await cp(join(src, 'bdevfilter.ko'), join(staged, 'bdevfilter.ko'));
    await cp(join(src, 'veeamblksnap.ko'), join(staged, 'veeamblksnap.ko'));
    await rm(dir, { recursive: true, force: true });
    await rename(staged, dir);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return result(false);
}
