/**
 * bin/blksnap-manager.mjs picks the built CLI only when it is up to date with every
 * engine source, in a scratch checkout whose "sources" and "build" say which ran.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/renderer-build.js';

const SOURCE = "export async function main(argv: string[]): Promise<number> { process.stdout.write(`sources ${argv.join(' ')}\\n`); return 0; }\n";
const BUILT = "export async function main(argv) { process.stdout.write(`dist ${argv.join(' ')}\\n`); return 0; }\n";

describe('bin/blksnap-manager.mjs', () => {
  let root: string;
  const file = (rel: string, text: string, mtimeSec: number): void => {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), text);
    utimesSync(join(root, rel), mtimeSec, mtimeSec);
  };
  const run = (env: Record<string, string> = {}): string => {
    const r = spawnSync(process.execPath, [join(root, 'bin', 'blksnap-manager.mjs'), 'version'], { encoding: 'utf8', env: { ...process.env, BLKSNAP_MANAGER_USE_DIST: '', ...env } });
    expect(r.stderr).toBe('');
    return r.stdout.trim();
  };

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'bm-bin-'));
    mkdirSync(join(root, 'bin'));
    copyFileSync(join(PROJECT_ROOT, 'bin', 'blksnap-manager.mjs'), join(root, 'bin', 'blksnap-manager.mjs'));
    symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(root, 'node_modules'));
    writeFileSync(join(root, 'package.json'), '{"type":"module"}\n');
    file('engine/cli/main.ts', SOURCE, 1000);
    file('engine/abi/errno.ts', 'export {};\n', 1000);
    file('dist/engine/cli/main.js', BUILT, 2000);
    file('dist/engine/abi/errno.js', 'export {};\n', 2000);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('runs the build when every source has a compiled file at least as new', () => {
    expect(run()).toBe('dist version');
  });

  it('runs the sources when one source is newer than its compiled file, or has none', () => {
    file('engine/abi/errno.ts', 'export {};\n', 3000);
    expect(run()).toBe('sources version');
    file('engine/abi/errno.ts', 'export {};\n', 1000);
    file('engine/core/new-file.ts', 'export {};\n', 1000);
    expect(run()).toBe('sources version');
    rmSync(join(root, 'engine', 'core'), { recursive: true });
    expect(run()).toBe('dist version');
  });

  it('obeys BLKSNAP_MANAGER_USE_DIST: 1 the build, 0 the sources', () => {
    expect(run({ BLKSNAP_MANAGER_USE_DIST: '0' })).toBe('sources version');
    file('engine/abi/errno.ts', 'export {};\n', 3000);
    expect(run({ BLKSNAP_MANAGER_USE_DIST: '1' })).toBe('dist version');
    file('engine/abi/errno.ts', 'export {};\n', 1000);
  });
});
