/**
 * The contract over Electron IPC: one ipcMain.handle per request (generic over
 * CONTRACT_METHODS), answering only the app's own page in the main frame, with the
 * params validated; event streams forwarded to the window with webContents.send.
 */
import type { IpcMain, IpcMainInvokeEvent, WebContents } from 'electron';
import { dispatchRequest } from '../bridge/dispatch.js';
import { CONTRACT_METHODS, eventChannel, requestChannel } from '../shared/contract.js';
import type { BlksnapApi, EventMap, EventName, RequestName } from '../shared/contract.js';
import { err } from '../shared/result.js';
import type { Result } from '../shared/result.js';
import { isAppPage } from './security.js';

/**
 * The sender is the app page in the main frame of the app's window. Compared by ids
 * (webContents id, the main frame's process and routing ids), not object identity.
 */
export function isTrustedSender(event: IpcMainInvokeEvent, appUrl: string, contents: () => WebContents | null): boolean {
  const frame = event.senderFrame;
  if (frame === null || frame === undefined) return false;
  if (frame.parent !== null) return false;
  const window = contents();
  if (window === null || event.sender.id !== window.id) return false;
  const main = window.mainFrame;
  if (frame.processId !== main.processId || frame.routingId !== main.routingId) return false;
  return isAppPage(frame.url, appUrl);
}

export interface IpcOptions {
  appUrl: string;
  /** The app window's webContents (null before it exists / after it closed). */
  contents: () => WebContents | null;
  /** Called when a request ends (for notifications on long jobs). */
  onRequestDone?: (method: RequestName, result: Result<unknown>, durationMs: number) => void;
  log?: (line: string) => void;
}

export function requestNames(): RequestName[] {
  return CONTRACT_METHODS.filter((m) => !m.event).map((m) => m.name as RequestName);
}

/** Registers one handler per request; returns a function removing them. */
export function registerIpcHandlers(ipcMain: IpcMain, api: BlksnapApi, options: IpcOptions): () => void {
  const names = requestNames();
  for (const name of names) {
    ipcMain.handle(requestChannel(name), async (event, ...args: unknown[]) => {
      if (!isTrustedSender(event, options.appUrl, options.contents)) {
        options.log?.(`refused ${name} from ${event.senderFrame?.url ?? 'a gone frame'}`);
        return err('UNAUTHORIZED', 'This page may not use the app.');
      }
      if (args.length > 1) return err('EINVAL', `Invalid parameters for ${name}.`, 'at most one params object');
      const started = Date.now();
      const result = await dispatchRequest(api, name, args[0]);
      options.onRequestDone?.(name, result, Date.now() - started);
      return result;
    });
  }
  return () => {
    for (const name of names) ipcMain.removeHandler(requestChannel(name));
  };
}

/** Forwards every event stream to the window; returns a function unsubscribing. */
export function forwardEvents(api: BlksnapApi, contents: () => WebContents | null): () => void {
  const eventNames = CONTRACT_METHODS.filter((m) => m.event).map((m) => m.name as EventName);
  const unsubscribers = eventNames.map(<K extends EventName>(name: K) => {
    const subscribe = api[name] as (cb: (payload: EventMap[K]) => void) => () => void;
    return subscribe((payload) => {
      const target = contents();
      if (target !== null && !target.isDestroyed()) target.send(eventChannel(name), payload);
    });
  });
  return () => {
    for (const unsubscribe of unsubscribers) unsubscribe();
  };
}
