/**
 * The layering of docs/architecture.md, enforced by ESLint as per-folder allow-lists
 * (eslint.config.js, scripts/eslint-layering.js). Each case lints a small source as if
 * it lived in a folder: every rule, and every way of loading a module (static import,
 * export from, import type, import(), require(), require.resolve(), import.meta.resolve(), createRequire(),
 * `import x = require()`, `typeof import()`), must be refused where the allow-list
 * does not name the target, and allowed where it does. The real tree must pass.
 */
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
import { LAYERS } from '../../eslint.config.js';

const eslint = new ESLint({ cwd: process.cwd() });
const RULES = new Set(['layering/allowed-imports', 'no-restricted-globals', 'no-restricted-properties']);

async function layeringErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  const fatal = (result?.messages ?? []).filter((m) => m.fatal);
  if (fatal.length > 0) throw new Error(`snippet does not parse: ${fatal.map((m) => m.message).join('; ')}`);
  return (result?.messages ?? []).filter((m) => m.ruleId !== null && RULES.has(m.ruleId)).map((m) => `${m.ruleId}: ${m.message}`);
}

interface Case {
  file: string;
  code: string;
  /** The error expected (rule id and message), or null when the source is allowed. */
  error: RegExp | null;
}

const FOLDER = /^layering\/allowed-imports: .* may not import /;
const PACKAGE = (layer: string, name: string): RegExp => new RegExp(`^layering/allowed-imports: ${layer} may not use the package '${name}'`);
const BUILTIN = (layer: string): RegExp => new RegExp(`^layering/allowed-imports: ${layer} may not use the Node.js module`);
const WINDOW = /^no-restricted-(globals|properties): .*renderer\/src\/api\.ts/;

const cases: Case[] = [
  // folders: engine never reaches app/, renderer/ or test/; inner engine folders only what their row lists
  { file: 'engine/core/x.ts', code: "import { c } from '../../app/shared/contract.js';\nexport const a = c;\n", error: /engine\/core may not import '..\/..\/app\/shared\/contract.js' \(app\/shared\/contract.js\)/ },
  { file: 'engine/core/x.ts', code: "import { c } from '../../renderer/src/api.js';\nexport const a = c;\n", error: FOLDER },
  { file: 'engine/core/x.ts', code: "import { s } from '../helper/service.js';\nexport const a = s;\n", error: /engine\/core may not import '..\/helper\/service.js' \(engine\/helper\/service.js\)/ },
  { file: 'engine/devices/x.ts', code: "import { e } from '../core/engine.js';\nexport const a = e;\n", error: /engine\/devices may not import '..\/core\/engine.js'/ },
  { file: 'engine/helper/x.ts', code: "import { FakeIoctlLayer } from '../../test/engine/kernel/fake-ioctl-layer.js';\nexport const a = FakeIoctlLayer;\n", error: /engine\/helper may not import .*\(test\/engine\/kernel\/fake-ioctl-layer.js\)/ },
  { file: 'engine/core/x.ts', code: "import { readFileSync } from 'node:fs';\nexport const a = readFileSync;\n", error: null },
  { file: 'engine/protocol/x.ts', code: "import { e } from '../core/engine.js';\nexport const a = e;\n", error: FOLDER },
  { file: 'engine/protocol/x.ts', code: "import { ERRNO } from '../abi/errno.js';\nimport { z } from 'zod';\nexport const a = [ERRNO, z];\n", error: null },
  { file: 'app/shared/x.ts', code: "import { p } from '../../engine/protocol/messages.js';\nexport const a = p;\n", error: /app\/shared may not import/ },
  { file: 'app/shared/x.ts', code: "import { z } from 'zod';\nexport const a = z;\n", error: null },
  { file: 'app/main/x.ts', code: "import { e } from '../../engine/core/engine.js';\nexport const a = e;\n", error: /app\/main may not import .*\(engine\/core\/engine.js\)/ },
  { file: 'app/main/x.ts', code: "import { p } from '../../engine/protocol/messages.js';\nimport { app } from 'electron';\nexport const a = [p, app];\n", error: null },
  { file: 'app/bridge/x.ts', code: "import { m } from '../main/main.js';\nexport const a = m;\n", error: /app\/bridge may not import/ },
  { file: 'renderer/src/x.ts', code: "import { m } from '../../app/main/main.js';\nexport const a = m;\n", error: /renderer\/src may not import/ },
  { file: 'renderer/src/x.ts', code: "import { c } from '../../app/shared/contract.js';\nimport { create } from 'zustand';\nexport const a = [c, create];\n", error: null },
  // a folder that has no row yet may import nothing
  { file: 'engine/newpart/x.ts', code: "import { ERRNO } from '../abi/errno.js';\nexport const a = ERRNO;\n", error: /unlisted folder may not import/ },

  // packages: electron only in main and preload; ws and koffi out of renderer, app/shared and engine/protocol
  { file: 'engine/core/x.ts', code: "import { app } from 'electron';\nexport const a = app;\n", error: PACKAGE('engine/core', 'electron') },
  { file: 'app/web/x.ts', code: "import { BrowserWindow } from 'electron';\nexport const a = BrowserWindow;\n", error: PACKAGE('app/web', 'electron') },
  { file: 'app/web/x.ts', code: "import { WebSocketServer } from 'ws';\nexport const a = WebSocketServer;\n", error: null },
  { file: 'renderer/src/x.ts', code: "import WebSocket from 'ws';\nexport const a = WebSocket;\n", error: PACKAGE('renderer/src', 'ws') },
  { file: 'app/shared/x.ts', code: "import WebSocket from 'ws';\nexport const a = WebSocket;\n", error: PACKAGE('app/shared', 'ws') },
  { file: 'engine/protocol/x.ts', code: "import WebSocket from 'ws';\nexport const a = WebSocket;\n", error: PACKAGE('engine/protocol', 'ws') },
  { file: 'renderer/src/x.ts', code: "import koffi from 'koffi';\nexport const a = koffi;\n", error: PACKAGE('renderer/src', 'koffi') },
  { file: 'app/shared/x.ts', code: "import koffi from 'koffi';\nexport const a = koffi;\n", error: PACKAGE('app/shared', 'koffi') },
  { file: 'engine/backup/x.ts', code: "import koffi from 'koffi';\nexport const a = koffi;\n", error: PACKAGE('engine/backup', 'koffi') },
  { file: 'engine/protocol/x.ts', code: "import koffi from 'koffi';\nexport const a = koffi;\n", error: PACKAGE('engine/protocol', 'koffi') },
  { file: 'engine/devices/x.ts', code: "import koffi from 'koffi';\nexport const a = koffi;\n", error: PACKAGE('engine/devices', 'koffi') },
  { file: 'engine/nbd/x.ts', code: "import koffi from 'koffi';\nexport const a = koffi;\n", error: null },
  { file: 'engine/helper/x.ts', code: "import koffi from 'koffi';\nexport const a = koffi;\n", error: null },
  { file: 'engine/kernel/x.ts', code: "import koffi from 'koffi';\nexport const a = koffi;\n", error: null },
  { file: 'engine/core/x.ts', code: "import { useState } from 'react';\nexport const a = useState;\n", error: PACKAGE('engine/core', 'react') },
  { file: 'app/shared/x.ts', code: "import { create } from 'zustand/vanilla';\nexport const a = create;\n", error: PACKAGE('app/shared', 'zustand') },

  // every form of loading a module is checked (here: koffi from engine/protocol, and app/ from engine/core)
  { file: 'engine/protocol/x.ts', code: "export * from 'koffi';\n", error: PACKAGE('engine/protocol', 'koffi') },
  { file: 'engine/protocol/x.ts', code: "export { load } from 'koffi';\n", error: PACKAGE('engine/protocol', 'koffi') },
  { file: 'engine/protocol/x.ts', code: "import type { IKoffiLib } from 'koffi';\nexport type A = IKoffiLib;\n", error: PACKAGE('engine/protocol', 'koffi') },
  { file: 'engine/protocol/x.ts', code: "export const a = () => import('koffi');\n", error: PACKAGE('engine/protocol', 'koffi') },
  { file: 'engine/core/x.ts', code: "export const a = () => import('../../app/bridge/bridge.js');\n", error: /engine\/core may not import '..\/..\/app\/bridge\/bridge.js'/ },
  { file: 'engine/core/x.ts', code: 'export const a = () => import(`../../app/bridge/bridge.js`);\n', error: FOLDER },
  { file: 'engine/core/x.ts', code: "const name = '../../app/bridge/bridge.js';\nexport const a = () => import(name);\n", error: /^layering\/allowed-imports: engine\/core: import\(\) with a module name that is not a literal/ },
  { file: 'engine/protocol/x.ts', code: "declare const require: (id: string) => unknown;\nexport const a = require('koffi');\n", error: PACKAGE('engine/protocol', 'koffi') },
  { file: 'engine/core/x.ts', code: "declare const require: (id: string) => unknown;\nexport const a = require('../../app/bridge/bridge.js');\n", error: FOLDER },
  { file: 'engine/core/x.ts', code: "declare const require: { resolve(id: string): string };\nexport const a = require.resolve('electron');\n", error: PACKAGE('engine/core', 'electron') },
  { file: 'engine/core/x.ts', code: "declare const require: (id: string) => unknown;\nconst id = 'electron';\nexport const a = require(id);\n", error: /require\(\) with a module name that is not a literal/ },
  { file: 'engine/protocol/x.ts', code: "export const a = import.meta.resolve('koffi');\n", error: PACKAGE('engine/protocol', 'koffi') },
  { file: 'engine/core/x.ts', code: "export const a = import.meta.resolve('koffi');\n", error: null },
  { file: 'engine/core/x.ts', code: "const name = 'electron';\nexport const a = import.meta.resolve(name);\n", error: /^layering\/allowed-imports: engine\/core: import\.meta\.resolve\(\) with a module name that is not a literal/ },
  { file: 'engine/core/x.ts', code: "import { createRequire } from 'node:module';\nexport const a = createRequire(import.meta.url)('electron');\n", error: /^layering\/allowed-imports: engine\/core: createRequire\(\) would load modules around the allow-list/ },
  { file: 'engine/core/x.ts', code: "import { createRequire as cr } from 'node:module';\nexport const a = cr;\n", error: /createRequire\(\) would load modules around the allow-list/ },
  { file: 'engine/core/x.ts', code: "import * as mod from 'node:module';\nexport const a = mod.createRequire(import.meta.url);\n", error: /createRequire\(\) would load modules around the allow-list/ },
  { file: 'engine/protocol/x.ts', code: "import koffi = require('koffi');\nexport const a = koffi;\n", error: PACKAGE('engine/protocol', 'koffi') },
  { file: 'engine/protocol/x.ts', code: "export type K = typeof import('koffi');\n", error: PACKAGE('engine/protocol', 'koffi') },

  // Node built-ins: not in app/preload, app/shared, engine/protocol, engine/abi or the renderer
  { file: 'app/preload/x.ts', code: "import { readFileSync } from 'node:fs';\nexport const a = readFileSync;\n", error: BUILTIN('app/preload') },
  { file: 'app/preload/x.ts', code: "import { exec } from 'child_process';\nexport const a = exec;\n", error: BUILTIN('app/preload') },
  { file: 'app/preload/x.ts', code: "declare const require: (id: string) => unknown;\nexport const a = require('fs');\n", error: BUILTIN('app/preload') },
  { file: 'app/preload/x.ts', code: "export const a = () => import('node:child_process');\n", error: BUILTIN('app/preload') },
  { file: 'app/preload/x.ts', code: "import { contextBridge } from 'electron';\nimport { c } from '../shared/contract.js';\nexport const a = [contextBridge, c];\n", error: null },
  { file: 'app/shared/x.ts', code: "import { EventEmitter } from 'events';\nexport const a = EventEmitter;\n", error: BUILTIN('app/shared') },
  { file: 'engine/protocol/x.ts', code: "import { readFileSync } from 'node:fs';\nexport const a = readFileSync;\n", error: BUILTIN('engine/protocol') },
  { file: 'engine/abi/x.ts', code: "import { Buffer } from 'node:buffer';\nexport const a = Buffer;\n", error: BUILTIN('engine/abi') },
  { file: 'renderer/src/x.ts', code: "import { join } from 'node:path';\nexport const a = join;\n", error: BUILTIN('renderer/src') },

  // the window (and window.blksnap) only through renderer/src/api.ts, by any of its names
  { file: 'renderer/src/x.ts', code: 'export const a = window.blksnap;\n', error: WINDOW },
  { file: 'renderer/src/x.ts', code: 'export const a = (window as unknown as { blksnap: unknown }).blksnap;\n', error: WINDOW },
  { file: 'renderer/src/x.ts', code: "export const a = (globalThis as unknown as Record<string, unknown>)['blksnap'];\n", error: WINDOW },
  { file: 'renderer/src/x.ts', code: 'export const a = (self as unknown as { blksnap: unknown }).blksnap;\n', error: WINDOW },
  { file: 'renderer/src/x.ts', code: 'export const a = (document.defaultView as unknown as { blksnap: unknown }).blksnap;\n', error: WINDOW },
  { file: 'renderer/src/features/x/y.tsx', code: 'export const a = window.location.href;\n', error: WINDOW },
  { file: 'app/shared/x.ts', code: 'export const a = globalThis.setTimeout;\n', error: WINDOW },
  { file: 'renderer/src/api.ts', code: 'export const a = (window as unknown as { blksnap: unknown }).blksnap ?? globalThis;\n', error: null },
  { file: 'renderer/src/x.ts', code: 'export const a = (window: { blksnap: number }): number => window.blksnap;\n', error: null },
];

describe('eslint layering rules', () => {
  for (const c of cases) {
    const lines = c.code.trim().split('\n');
    const shown = lines.find((l) => /import|require|window|globalThis|self|defaultView|export \*|export \{/.test(l)) ?? lines[0];
    it(`${c.file}: ${c.error ? 'refuses' : 'allows'} ${shown}`, async () => {
      const errors = await layeringErrors(c.file, c.code);
      if (c.error) {
        expect(errors.length, errors.join('\n')).toBeGreaterThan(0);
        expect(errors.some((e) => (c.error as RegExp).test(e)), errors.join('\n')).toBe(true);
      } else {
        expect(errors).toEqual([]);
      }
    });
  }

  it('has a row for every folder of engine/ and app/, and each row names only existing folders', async () => {
    const { readdirSync, statSync } = await import('node:fs');
    const dirs = ['engine', 'app'].flatMap((top) => readdirSync(top).filter((d) => statSync(`${top}/${d}`).isDirectory()).map((d) => `${top}/${d}`));
    const rows = LAYERS.map((l) => l.folder);
    expect(rows.filter((r) => r !== 'renderer/src').sort()).toEqual(dirs.sort());
    for (const l of LAYERS) for (const f of l.folders) expect(rows).toContain(f);
  });

  it('the real tree has no layering error', async () => {
    const results = await eslint.lintFiles(['engine', 'app', 'renderer/src']);
    const errors = results.flatMap((r) =>
      r.messages.filter((m) => m.ruleId !== null && RULES.has(m.ruleId)).map((m) => `${r.filePath}:${m.line}: ${m.ruleId}: ${m.message}`),
    );
    expect(results.length).toBeGreaterThan(100);
    expect(errors).toEqual([]);
  }, 180_000);
});
