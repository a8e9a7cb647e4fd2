import { describe, expect, it, vi } from 'vitest';
import type { IpcMain, IpcMainInvokeEvent, WebContents } from 'electron';
import { forwardEvents, registerIpcHandlers } from '../../../app/main/ipc.js';
import { CONTRACT_METHODS, eventChannel, requestChannel } from '../../../app/shared/contract.js';
import type { BlksnapApi } from '../../../app/shared/contract.js';
import { ok } from '../../../app/shared/result.js';

vi.mock('electron', () => ({}));

const APP = 'file:///app/renderer/dist/index.html';

type Handler = (event: IpcMainInvokeEvent, ...args: unknown[]) => Promise<unknown>;

function fakeIpc(): { ipc: IpcMain; handlers: Map<string, Handler> } {
  const handlers = new Map<string, Handler>();
  const ipc = {
    handle: (channel: string, handler: Handler) => {
      if (handlers.has(channel)) throw new Error(`twice: ${channel}`);
      handlers.set(channel, handler);
    },
    removeHandler: (channel: string) => handlers.delete(channel),
  } as unknown as IpcMain;
  return { ipc, handlers };
}

let nextId = 1;
function fakeWindow(url = APP) {
  const id = nextId++;
  const mainFrame = { url, parent: null, processId: 100 + id, routingId: 1 };
  const contents = { id, mainFrame, isDestroyed: () => false, send: vi.fn() };
  return { contents, mainFrame };
}

function recordingApi(): { api: BlksnapApi; calls: { name: string; params: unknown }[]; emit: (name: string, payload: unknown) => void } {
  const calls: { name: string; params: unknown }[] = [];
  const subscribers = new Map<string, Set<(p: unknown) => void>>();
  const api: Record<string, unknown> = {};
  for (const m of CONTRACT_METHODS) {
    if (m.event) {
      api[m.name] = (cb: (p: unknown) => void) => {
        const set = subscribers.get(m.name) ?? new Set();
        subscribers.set(m.name, set);
        set.add(cb);
        return () => set.delete(cb);
      };
    } else {
      api[m.name] = async (params?: unknown) => {
        calls.push({ name: m.name, params });
        return ok(`answer of ${m.name}`);
      };
    }
  }
  return { api: api as unknown as BlksnapApi, calls, emit: (name, payload) => subscribers.get(name)?.forEach((cb) => cb(payload)) };
}

describe('IPC handlers', () => {
  it('registers exactly one handler per contract request', () => {
    const { ipc, handlers } = fakeIpc();
    const { api } = recordingApi();
    const remove = registerIpcHandlers(ipc, api, { appUrl: APP, contents: () => null });
    const expected = CONTRACT_METHODS.filter((m) => !m.event).map((m) => requestChannel(m.name as never));
    expect([...handlers.keys()].sort()).toEqual(expected.sort());
    remove();
    expect(handlers.size).toBe(0);
  });

  it('answers the app page in the main frame, with validated params', async () => {
    const { ipc, handlers } = fakeIpc();
    const { api, calls } = recordingApi();
    const { contents, mainFrame } = fakeWindow();
    const done = vi.fn();
    registerIpcHandlers(ipc, api, { appUrl: APP, contents: () => contents as unknown as WebContents, onRequestDone: done });
    const event = { sender: contents, senderFrame: mainFrame } as unknown as IpcMainInvokeEvent;
    expect(await handlers.get(requestChannel('listDevices'))!(event)).toEqual({ ok: true, value: 'answer of listDevices' });
    expect(await handlers.get(requestChannel('cbtInfo'))!(event, { device: 'disk1' })).toEqual({ ok: true, value: 'answer of cbtInfo' });
    expect(calls).toEqual([
      { name: 'listDevices', params: undefined },
      { name: 'cbtInfo', params: { device: 'disk1' } },
    ]);
    expect(done).toHaveBeenCalledTimes(2);
    // bad params never reach the API
    const bad = await handlers.get(requestChannel('snapshotCreate'))!(event, { devices: [], storagePath: '', limitBytes: -1 });
    expect(bad).toMatchObject({ ok: false, error: { code: 'EINVAL' } });
    const extra = await handlers.get(requestChannel('cbtInfo'))!(event, { device: 'a' }, { more: 1 });
    expect(extra).toMatchObject({ ok: false, error: { code: 'EINVAL' } });
    expect(calls).toHaveLength(2);
  });

  it('refuses other senders: another page, a subframe, another webContents, a gone frame', async () => {
    const { ipc, handlers } = fakeIpc();
    const { api, calls } = recordingApi();
    const { contents, mainFrame } = fakeWindow();
    registerIpcHandlers(ipc, api, { appUrl: APP, contents: () => contents as unknown as WebContents });
    const call = (event: object) => handlers.get(requestChannel('listDevices'))!(event as IpcMainInvokeEvent);
    const other = fakeWindow('https://evil.example/');
    const evil = { sender: other.contents, senderFrame: other.mainFrame };
    const wrongUrlSameWindow = { sender: contents, senderFrame: { ...mainFrame, url: 'file:///tmp/evil.html' } };
    const subframe = { sender: contents, senderFrame: { url: APP, parent: mainFrame, processId: mainFrame.processId, routingId: 2 } };
    const otherFrameSameProcess = { sender: contents, senderFrame: { url: APP, parent: null, processId: mainFrame.processId, routingId: 9 } };
    const otherContents = { sender: fakeWindow().contents, senderFrame: mainFrame };
    const gone = { sender: contents, senderFrame: null };
    for (const event of [evil, wrongUrlSameWindow, subframe, otherFrameSameProcess, otherContents, gone]) {
      expect(await call(event)).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
    }
    expect(calls).toEqual([]);
    // and nothing answers before the window exists
    const { ipc: ipc2, handlers: h2 } = fakeIpc();
    registerIpcHandlers(ipc2, api, { appUrl: APP, contents: () => null });
    expect(await h2.get(requestChannel('listDevices'))!({ sender: contents, senderFrame: mainFrame } as unknown as IpcMainInvokeEvent)).toMatchObject({
      ok: false,
      error: { code: 'UNAUTHORIZED' },
    });
  });

  it('forwards every event stream to the window', () => {
    const { api, emit } = recordingApi();
    const { contents } = fakeWindow();
    const stop = forwardEvents(api, () => contents as unknown as WebContents);
    emit('onHelperState', { state: 'lost' });
    emit('onSnapshotEvent', { code: 'no_space' });
    emit('onWorkloadProgress', { device: 'd' });
    expect(contents.send.mock.calls).toEqual([
      [eventChannel('onHelperState'), { state: 'lost' }],
      [eventChannel('onSnapshotEvent'), { code: 'no_space' }],
      [eventChannel('onWorkloadProgress'), { device: 'd' }],
    ]);
    stop();
    emit('onHelperState', { state: 'connected' });
    expect(contents.send).toHaveBeenCalledTimes(3);
  });
});
