/**
 * The whole main process wiring under Node, with electron mocked: the window it opens,
 * the session guards, one IPC handler per request, and the helper launch it chooses.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { CONTRACT_METHODS, requestChannel } from '../../../app/shared/contract.js';

const state = vi.hoisted(() => ({
  windows: [] as { options: Record<string, unknown>; loaded: string[]; on: Map<string, unknown>; contentsOn: Map<string, unknown>; openHandler: unknown }[],
  handled: new Map<string, unknown>(),
  appOn: new Map<string, unknown>(),
  cspListener: null as unknown,
  permissionHandler: null as unknown,
  bridgeOptions: [] as Record<string, unknown>[],
  sandboxEnabled: false,
  packaged: false,
}));

vi.mock('electron', () => {
  class BrowserWindow {
    readonly webContents: Record<string, unknown>;
    constructor(options: Record<string, unknown>) {
      const record = { options, loaded: [] as string[], on: new Map<string, unknown>(), contentsOn: new Map<string, unknown>(), openHandler: null as unknown };
      state.windows.push(record);
      this.webContents = {
        on: (name: string, fn: unknown) => record.contentsOn.set(name, fn),
        setWindowOpenHandler: (fn: unknown) => (record.openHandler = fn),
        mainFrame: { url: '', parent: null },
        isDestroyed: () => false,
        send: () => {},
      };
      this.record = record;
    }
    private readonly record: { loaded: string[]; on: Map<string, unknown> };
    once(name: string, fn: unknown): void {
      this.record.on.set(name, fn);
    }
    loadFile(path: string): Promise<void> {
      this.record.loaded.push(path);
      return Promise.resolve();
    }
    isDestroyed(): boolean {
      return false;
    }
    isFocused(): boolean {
      return true;
    }
  }
  const session = {
    webRequest: { onHeadersReceived: (fn: unknown) => (state.cspListener = fn) },
    setPermissionRequestHandler: (fn: unknown) => (state.permissionHandler = fn),
    setPermissionCheckHandler: () => {},
    setDevicePermissionHandler: () => {},
  };
  return {
    BrowserWindow,
    Notification: Object.assign(function Notification() {}, { isSupported: () => false }),
    app: {
      enableSandbox: () => (state.sandboxEnabled = true),
      requestSingleInstanceLock: () => true,
      quit: () => {},
      on: (name: string, fn: unknown) => state.appOn.set(name, fn),
      whenReady: () => Promise.resolve(),
      getAppPath: () => '/opt/blksnap/resources/app.asar',
      getVersion: () => '0.1.0',
      get isPackaged() {
        return state.packaged;
      },
    },
    ipcMain: { handle: (channel: string, fn: unknown) => state.handled.set(channel, fn), removeHandler: () => {} },
    session: { defaultSession: session },
    shell: { openExternal: async () => {} },
  };
});

vi.mock('../../../app/bridge/bridge.js', () => ({
  createBridge: (options: Record<string, unknown>) => {
    state.bridgeOptions.push(options);
    const noop = () => () => {};
    const api: Record<string, unknown> = {};
    return { api: new Proxy(api, { get: (_t, name) => (String(name).startsWith('on') ? noop : async () => ({ ok: true, value: null })) }), start: async () => {}, close: () => {}, link: {} };
  },
}));

describe('Electron main process (electron mocked)', () => {
  beforeAll(async () => {
    const { startApp } = await import('../../../app/main/app-main.js');
    startApp();
    await new Promise((r) => setTimeout(r, 10));
  });

  it('enables the sandbox for every renderer and opens one secure window on the renderer', () => {
    expect(state.sandboxEnabled).toBe(true);
    expect(state.windows).toHaveLength(1);
    const win = state.windows[0]!;
    expect(win.options['webPreferences']).toMatchObject({
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      preload: '/opt/blksnap/resources/app.asar/dist/app/preload/preload.js',
    });
    expect(win.loaded).toEqual(['/opt/blksnap/resources/app.asar/renderer/dist/index.html']);
    expect([...win.contentsOn.keys()]).toEqual(expect.arrayContaining(['will-navigate', 'will-redirect', 'will-attach-webview']));
    expect(win.openHandler).toBeTypeOf('function');
    expect(state.appOn.has('web-contents-created')).toBe(true);
  });

  it('installs the CSP and the permission guard on the session', () => {
    expect(state.cspListener).toBeTypeOf('function');
    const cb = vi.fn();
    (state.permissionHandler as (wc: unknown, p: string, cb: (g: boolean) => void) => void)({}, 'media', cb);
    expect(cb).toHaveBeenCalledWith(false);
  });

  it('handles exactly the contract requests over IPC', () => {
    const expected = CONTRACT_METHODS.filter((m) => !m.event).map((m) => requestChannel(m.name as never));
    expect([...state.handled.keys()].sort()).toEqual(expected.sort());
  });

  it('starts the helper from the sources in development (argument list, no shell)', () => {
    const options = state.bridgeOptions[0]!;
    const launch = options['launch'] as { command: string; args: string[] };
    expect(launch.command).toBe(process.execPath);
    expect(launch.args.slice(0, 2)).toEqual(['/opt/blksnap/resources/app.asar/bin/blksnap-manager.mjs', 'daemon']);
    expect(launch.args).toContain('--socket');
    expect(options['appVersion']).toBe('0.1.0');
  });

  it('packaged: starts the installed launcher (through pkexec unless root) on the socket it fixes', async () => {
    const { createAppBridge } = await import('../../../app/main/app-main.js');
    state.packaged = true;
    // Electron sets process.resourcesPath; plain Node does not
    Object.defineProperty(process, 'resourcesPath', { value: '/opt/Blksnap Manager/resources', configurable: true });
    try {
      createAppBridge('/opt/Blksnap Manager/resources/app.asar');
    } finally {
      state.packaged = false;
    }
    const options = state.bridgeOptions[state.bridgeOptions.length - 1]!;
    const uid = process.getuid?.() ?? 0;
    expect(options['socketPath']).toBe(`/run/user/${uid}/blksnap-manager/helper.sock`);
    const launch = options['launch'] as { command: string; args: string[] };
    const launcher = '/opt/Blksnap Manager/resources/bin/blksnap-manager-helper';
    const args = ['--driver', 'auto', '--socket', `/run/user/${uid}/blksnap-manager/helper.sock`];
    if (uid === 0) expect(launch).toMatchObject({ command: launcher, args });
    else expect(launch).toMatchObject({ command: '/usr/bin/pkexec', args: [launcher, ...args] });
  });
});
