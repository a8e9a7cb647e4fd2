/**
 * electron-builder.yml against the tree: electron-builder's own loader and schema
 * accept it, and every file it names exists — the packaging inputs as they are, and
 * the build outputs (dist/, renderer/dist) from a fresh build into a temp directory.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRenderer } from '../helpers/renderer-build.js';

const ROOT = resolve(import.meta.dirname, '../..');
const require = createRequire(join(ROOT, 'package.json'));

interface ExtraResource {
  from: string;
  to: string;
}
interface BuilderConfig {
  productName: string;
  executableName: string;
  directories: { buildResources: string; output: string };
  /** electron-builder normalizes the list into FileSets. */
  files: (string | { filter: string[] })[];
  asarUnpack: string[];
  extraResources: ExtraResource[];
  linux: { icon: string; desktop: { entry: Record<string, string> } };
  deb: { afterInstall: string; afterRemove: string; depends: string[] };
}

async function loadConfig(): Promise<BuilderConfig> {
  const { getConfig, validateConfiguration } = require('app-builder-lib/out/util/config/config.js') as {
    getConfig(dir: string, path: string | null, opts: null): Promise<unknown>;
    validateConfiguration(config: unknown, logger: unknown): Promise<void>;
  };
  const { DebugLogger } = require('builder-util') as { DebugLogger: new (enabled: boolean) => unknown };
  const config = await getConfig(ROOT, null, null);
  await validateConfiguration(config, new DebugLogger(false));
  return config as BuilderConfig;
}

function pngSize(path: string): { width: number; height: number } {
  const data = readFileSync(path);
  expect(data.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
  expect(data.subarray(12, 16).toString('ascii')).toBe('IHDR');
  return { width: data.readUInt32BE(16), height: data.readUInt32BE(20) };
}

function desktopEntries(path: string): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) entries[m[1] as string] = m[2] as string;
  }
  return entries;
}

describe('electron-builder.yml', () => {
  let config: BuilderConfig;
  let out: string;

  beforeAll(async () => {
    config = await loadConfig();
    out = mkdtempSync(join(tmpdir(), 'blksnap-packaging-'));
  });

  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('passes electron-builder\'s own schema validation', () => {
    expect(config.productName).toBe('Blksnap Manager');
    expect(config.executableName).toBe('blksnap-manager');
  });

  it('names packaging inputs that exist: build resources, extra resources, icon, deb scripts', () => {
    expect(statSync(join(ROOT, config.directories.buildResources)).isDirectory()).toBe(true);
    expect(config.extraResources.map((r) => r.to).sort()).toEqual(
      ['bin/blksnap-manager-cli', 'bin/blksnap-manager-helper', 'polkit/org.blksnapmanager.helper.policy', 'systemd/blksnap-manager-helper.service'].sort(),
    );
    for (const resource of config.extraResources) expect(existsSync(join(ROOT, resource.from)), resource.from).toBe(true);
    const launcher = config.extraResources.find((r) => r.to === 'bin/blksnap-manager-helper');
    expect(statSync(join(ROOT, launcher!.from)).mode & 0o111).not.toBe(0);
    for (const script of [config.deb.afterInstall, config.deb.afterRemove]) {
      const path = join(ROOT, script);
      expect(statSync(path).mode & 0o111).not.toBe(0);
      expect(spawnSync('sh', ['-n', path]).status).toBe(0);
    }
    for (const pattern of config.asarUnpack) expect(existsSync(join(ROOT, pattern.replace(/\/\*\*\/\*$/, '')))).toBe(true);
  });

  it('the after-install script installs the policy and unit from where extraResources puts them', () => {
    const script = readFileSync(join(ROOT, config.deb.afterInstall), 'utf8');
    expect(script).toContain(`APP_DIR='/opt/${config.productName}'`);
    expect(script).toContain(`ln -sf "$APP_DIR/${config.executableName}"`);
    for (const resource of config.extraResources) expect(script).toContain(`$RES/${resource.to}`);
    const policy = readFileSync(join(ROOT, 'packaging/polkit/org.blksnapmanager.helper.policy'), 'utf8');
    expect(policy).toContain(`/opt/${config.productName}/resources/bin/blksnap-manager-helper`);
  });

  it('has a 512x512 PNG icon that make-icon.mjs reproduces byte for byte', () => {
    const icon = join(ROOT, config.linux.icon);
    expect(pngSize(icon)).toEqual({ width: 512, height: 512 });
    const again = join(out, 'icon.png');
    const run = spawnSync(process.execPath, [join(ROOT, 'packaging/build/make-icon.mjs'), again], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(readFileSync(again).equals(readFileSync(icon))).toBe(true);
  });

  it('the desktop entry and packaging/build/blksnap-manager.desktop agree', () => {
    const file = desktopEntries(join(ROOT, 'packaging/build/blksnap-manager.desktop'));
    for (const [key, value] of Object.entries(config.linux.desktop.entry)) expect(file[key], key).toBe(value);
    expect(file['Exec']).toBe(`${config.executableName} %U`);
    expect(file['Type']).toBe('Application');
  });

  it('the files globs cover a fresh build: main, preload, web server, CLI, renderer', async () => {
    const globs = config.files.flatMap((f) => (typeof f === 'string' ? [f] : f.filter));
    expect(globs).toEqual(expect.arrayContaining(['dist/**/*', 'renderer/dist/**/*', 'package.json']));
    const dist = join(out, 'dist');
    // the files are what matter here, not the types (npm run typecheck checks them): --noCheck
    spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--noCheck', '--outDir', dist], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    const main = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { main: string }).main;
    expect(main.startsWith('dist/')).toBe(true);
    for (const file of [main, 'dist/app/preload/preload.js', 'dist/app/web/main.js', 'dist/engine/cli/main.js']) {
      expect(existsSync(join(out, file)), file).toBe(true);
    }
    expect(readFileSync(join(out, 'dist/app/preload/preload.js'), 'utf8')).toContain('require("electron")');

    const rendererOut = join(out, 'renderer-dist');
    await buildRenderer(rendererOut); // renderer/vite.config.ts, built once for all test files
    const html = readFileSync(join(rendererOut, 'index.html'), 'utf8');
    const assets = [...html.matchAll(/(?:src|href)="\.\/([^"]+)"/g)].map((m) => m[1] as string);
    expect(assets.some((a) => a.endsWith('.js'))).toBe(true);
    for (const asset of assets) expect(existsSync(join(rendererOut, asset)), asset).toBe(true);
    // no inline scripts: the CSP allows script-src 'self' only
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  });
});
