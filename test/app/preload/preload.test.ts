/**
 * The preload as Electron runs it sandboxed: compiled by TypeScript with the build's
 * settings (it must come out as CommonJS), then evaluated in a fresh VM context
 * wrapped like Electron's sandboxed preloads (require, process, exports, module),
 * where require knows only 'electron' (mocked here).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runInNewContext } from 'node:vm';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTRACT_METHODS, eventChannel, requestChannel } from '../../../app/shared/contract.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const SOURCE = join(ROOT, 'app/preload/preload.ts');

function compilePreload(outDir: string): string {
  const config = ts.readConfigFile(join(ROOT, 'tsconfig.build.json'), (p) => ts.sys.readFile(p));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
  const program = ts.createProgram([SOURCE], { ...parsed.options, outDir, rootDir: ROOT, sourceMap: false, noEmit: false });
  const diagnostics = ts.getPreEmitDiagnostics(program, program.getSourceFile(SOURCE));
  if (diagnostics.length > 0) throw new Error(ts.formatDiagnostics(diagnostics, ts.createCompilerHost({})));
  const emitted = program.emit(program.getSourceFile(SOURCE));
  if (emitted.emitSkipped) throw new Error('preload emit skipped');
  return readFileSync(join(outDir, 'app/preload/preload.js'), 'utf8');
}

interface Listener {
  channel: string;
  fn: (event: unknown, ...args: unknown[]) => void;
}

interface Harness {
  exposed: { key: string; api: Record<string, unknown> }[];
  invokes: { channel: string; args: unknown[] }[];
  listeners: Listener[];
  required: string[];
}

function runPreload(code: string): Harness {
  const h: Harness = { exposed: [], invokes: [], listeners: [], required: [] };
  const electron = {
    contextBridge: {
      exposeInMainWorld: (key: string, api: Record<string, unknown>) => h.exposed.push({ key, api }),
    },
    ipcRenderer: {
      invoke: async (channel: string, ...args: unknown[]) => {
        h.invokes.push({ channel, args });
        return { ok: true, value: channel };
      },
      on: (channel: string, fn: Listener['fn']) => h.listeners.push({ channel, fn }),
      removeListener: (channel: string, fn: Listener['fn']) => {
        const i = h.listeners.findIndex((l) => l.channel === channel && l.fn === fn);
        if (i >= 0) h.listeners.splice(i, 1);
      },
      send: () => {
        throw new Error('the preload must not use send');
      },
    },
  };
  const sandboxRequire = (name: string): unknown => {
    h.required.push(name);
    if (name === 'electron') return electron;
    throw new Error(`module not found in a sandboxed preload: ${name}`);
  };
  const wrapper = runInNewContext(`(function(require, process, exports, module) {${code}\n})`, {}) as (
    require: (name: string) => unknown,
    process: object,
    exports: object,
    module: { exports: object },
  ) => void;
  const exports = {};
  wrapper(sandboxRequire, {}, exports, { exports });
  return h;
}

describe('preload (sandboxed, CommonJS)', () => {
  let outDir: string;
  let code: string;
  let h: Harness;
  let api: Record<string, unknown>;

  beforeAll(() => {
    outDir = mkdtempSync(join(tmpdir(), 'blksnap-preload-'));
    code = compilePreload(outDir);
    h = runPreload(code);
    api = h.exposed[0]?.api ?? {};
  });

  afterAll(() => rmSync(outDir, { recursive: true, force: true }));

  it('compiles to a CommonJS script that only requires electron', () => {
    expect(code).not.toMatch(/^\s*(import|export)\s/m);
    expect(code).toContain('require("electron")');
    expect(h.required).toEqual(['electron']);
    expect(JSON.parse(readFileSync(join(ROOT, 'app/preload/package.json'), 'utf8'))).toEqual({ type: 'commonjs' });
  });

  it('exposes window.blksnap with exactly one function per contract method', () => {
    expect(h.exposed).toHaveLength(1);
    expect(h.exposed[0]?.key).toBe('blksnap');
    const names = CONTRACT_METHODS.map((m) => m.name).sort();
    expect(Object.keys(api).sort()).toEqual(names);
    for (const name of names) expect(typeof api[name]).toBe('function');
    expect(Object.isFrozen(api)).toBe(true);
    for (const raw of ['ipcRenderer', 'invoke', 'send', 'on', 'removeListener']) expect(api).not.toHaveProperty(raw);
  });

  it('sends each request on its channel, with params only where the contract has them', async () => {
    for (const m of CONTRACT_METHODS.filter((d) => !d.event)) {
      h.invokes.length = 0;
      const fn = api[m.name] as (p?: unknown) => Promise<unknown>;
      const answer = await fn({ device: 'x' });
      expect(answer).toEqual({ ok: true, value: requestChannel(m.name as never) });
      expect(h.invokes).toEqual([{ channel: requestChannel(m.name as never), args: [m.hasParams ? { device: 'x' } : undefined] }]);
    }
  });

  it('subscribes event streams without leaking the IPC event, and unsubscribes', () => {
    for (const m of CONTRACT_METHODS.filter((d) => d.event)) {
      const seen: unknown[] = [];
      const unsubscribe = (api[m.name] as (cb: (p: unknown) => void) => () => void)((p) => seen.push(p));
      const listener = h.listeners.find((l) => l.channel === eventChannel(m.name as never));
      expect(listener).toBeDefined();
      listener?.fn({ sender: 'the ipc event with ports and sender' }, { state: 'connected' });
      expect(seen).toEqual([{ state: 'connected' }]);
      unsubscribe();
      expect(h.listeners.some((l) => l.channel === eventChannel(m.name as never))).toBe(false);
    }
    expect(() => (api['onHelperState'] as (cb: unknown) => void)('not a function')).toThrow(/needs a callback function/);
  });

  it('turns an IPC failure into a Result instead of a rejection', async () => {
    const failing = runPreload(code.replace('ipc.invoke(channel', '(() => Promise.reject(new Error("no handler")))(channel'));
    const answer = await (failing.exposed[0]?.api['listDevices'] as () => Promise<unknown>)();
    expect(answer).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
  });
});
