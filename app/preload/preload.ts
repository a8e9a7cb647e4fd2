/**
 * The preload: exposes the contract as `window.blksnap`, one function per operation
 * (requests through ipcRenderer.invoke, event streams through ipcRenderer.on), never
 * ipcRenderer itself and never the IPC event object.
 *
 * It runs sandboxed (contextIsolation, sandbox): Electron evaluates it as a CommonJS
 * script with a `require` that knows only 'electron' and a few polyfills, so it cannot
 * load app/shared at run time. This folder's package.json makes TypeScript emit
 * CommonJS for it; the method lists below are spelled out, with mapped types so the
 * compiler rejects a missing or extra name, and test/app/preload checks them (and the
 * channel names) against app/shared/contract.ts.
 */
import type { BlksnapApi, EventName, RequestName } from '../shared/contract.js';
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a sandboxed preload is CommonJS (verbatimModuleSyntax)
import electron = require('electron');

const REQUESTS: { [K in RequestName]: 'params' | 'none' } = {
  getStatus: 'none',
  reconnect: 'none',
  listDevices: 'none',
  createLabDisk: 'params',
  addImage: 'params',
  removeImage: 'params',
  listFilesystems: 'none',
  getStorageAllocation: 'none',
  setStorageAllocation: 'params',
  snapshotCreate: 'params',
  snapshotTake: 'params',
  snapshotDestroy: 'params',
  snapshotGrowStorage: 'params',
  listEventHistory: 'none',
  dismissEventHistory: 'params',
  listSnapshots: 'none',
  cbtInfo: 'params',
  cbtMap: 'params',
  workloadStart: 'params',
  workloadStop: 'params',
  backupPlan: 'params',
  backupStart: 'params',
  backupVerify: 'params',
  backupRestore: 'params',
  backupCatalog: 'params',
  backupExport: 'params',
  backupUnexport: 'params',
  jobsList: 'none',
  jobsCancel: 'params',
  jobsWait: 'params',
};

const EVENTS: { [K in EventName]: true } = {
  onSnapshotEvent: true,
  onHelperState: true,
  onWorkloadProgress: true,
  onJob: true,
};

/** Same as app/shared/contract.ts requestChannel / eventChannel. */
const requestChannel = (name: string): string => `blksnap:${name}`;
const eventChannel = (name: string): string => `blksnap:event:${name}`;

interface IpcRendererLike {
  invoke(channel: string, ...args: unknown[]): Promise<unknown>;
  on(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
  removeListener(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
}

function buildApi(ipc: IpcRendererLike): BlksnapApi {
  const api: Record<string, unknown> = {};
  for (const [name, kind] of Object.entries(REQUESTS)) {
    const channel = requestChannel(name);
    api[name] = (params?: unknown): Promise<unknown> =>
      ipc.invoke(channel, kind === 'params' ? params : undefined).catch((error: unknown) => ({
        ok: false,
        error: { code: 'INTERNAL', message: 'The request did not reach the app.', detail: String(error) },
      }));
  }
  for (const name of Object.keys(EVENTS)) {
    const channel = eventChannel(name);
    api[name] = (callback: unknown): (() => void) => {
      if (typeof callback !== 'function') throw new TypeError(`${name} needs a callback function`);
      const listener = (_event: unknown, payload: unknown): void => {
        (callback as (payload: unknown) => void)(payload);
      };
      ipc.on(channel, listener);
      return () => {
        ipc.removeListener(channel, listener);
      };
    };
  }
  return Object.freeze(api) as unknown as BlksnapApi;
}

electron.contextBridge.exposeInMainWorld('blksnap', buildApi(electron.ipcRenderer));
