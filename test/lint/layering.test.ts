/**
 * The layering rules of docs/architecture.md are enforced by ESLint per folder.
 * These cases lint small sources as if they lived in each folder and check that a
 * violating import is an error and an allowed one is not.
 */
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint({ cwd: process.cwd() });

async function layeringErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? [])
    .filter((m) => m.ruleId === 'no-restricted-imports' || m.ruleId === 'no-restricted-syntax')
    .map((m) => m.message);
}

const cases: { file: string; code: string; violates: boolean }[] = [
  { file: 'engine/core/x.ts', code: "import { app } from 'electron';\nexport const a = app;\n", violates: true },
  { file: 'engine/core/x.ts', code: "import { c } from '../../app/shared/contract.js';\nexport const a = c;\n", violates: true },
  { file: 'engine/core/x.ts', code: "import { c } from '../../renderer/src/api.js';\nexport const a = c;\n", violates: true },
  { file: 'engine/core/x.ts', code: "import { readFileSync } from 'node:fs';\nexport const a = readFileSync;\n", violates: false },
  { file: 'engine/protocol/x.ts', code: "import { readFileSync } from 'node:fs';\nexport const a = readFileSync;\n", violates: true },
  { file: 'engine/protocol/x.ts', code: "import { e } from '../core/engine.js';\nexport const a = e;\n", violates: true },
  { file: 'engine/protocol/x.ts', code: "import { ERRNO } from '../abi/errno.js';\nexport const a = ERRNO;\n", violates: false },
  { file: 'app/shared/x.ts', code: "import { EventEmitter } from 'events';\nexport const a = EventEmitter;\n", violates: true },
  { file: 'app/main/x.ts', code: "import { e } from '../../engine/core/engine.js';\nexport const a = e;\n", violates: true },
  { file: 'app/main/x.ts', code: "import { p } from '../../engine/protocol/messages.js';\nexport const a = p;\n", violates: false },
  { file: 'app/web/x.ts', code: "import { BrowserWindow } from 'electron';\nexport const a = BrowserWindow;\n", violates: true },
  { file: 'renderer/src/x.ts', code: "import { m } from '../../app/main/main.js';\nexport const a = m;\n", violates: true },
  { file: 'renderer/src/x.ts', code: "import { c } from '../../app/shared/contract.js';\nexport const a = c;\n", violates: false },
  { file: 'renderer/src/x.ts', code: 'export const a = (window as unknown as { blksnap: unknown }).blksnap;\n', violates: false },
  { file: 'renderer/src/x.ts', code: 'declare const window: { blksnap: unknown };\nexport const a = window.blksnap;\n', violates: true },
  { file: 'renderer/src/api.ts', code: 'declare const window: { blksnap: unknown };\nexport const a = window.blksnap;\n', violates: false },
];

describe('eslint layering rules', () => {
  for (const c of cases) {
    it(`${c.file}: ${c.violates ? 'rejects' : 'allows'} ${c.code.split('\n')[0]}`, async () => {
      const errors = await layeringErrors(c.file, c.code);
      if (c.violates) expect(errors.length).toBeGreaterThan(0);
      else expect(errors).toEqual([]);
    });
  }
});
