/**
 * Browser mode: the contract over one WebSocket (wire format in app/shared/wire.ts).
 * Requests are queued until the socket opens; a lost socket answers the requests in
 * flight with HELPER_UNAVAILABLE, reports `{ state: 'lost' }` to onHelperState
 * subscribers and reconnects with a growing delay (not after UNAUTHORIZED); once back,
 * it asks getStatus and reports the helper's state from it.
 */
import { CONTRACT_METHODS } from '../../../app/shared/contract.js';
import type { BlksnapApi, EventMap, EventName, RequestName } from '../../../app/shared/contract.js';
import { err } from '../../../app/shared/result.js';
import type { Result } from '../../../app/shared/result.js';
import type { AppStatus } from '../../../app/shared/types.js';
import { WS_CLOSE_UNAUTHORIZED, encodeRequest, parseServerMessage } from '../../../app/shared/wire.js';

/** The part of the DOM WebSocket the client uses (a fake in tests). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export interface WsClientOptions {
  url: string;
  createSocket: (url: string) => SocketLike;
  /** Delays before reconnecting, in ms (the last one repeats). */
  reconnectDelaysMs?: number[];
  setTimer?: (fn: () => void, ms: number) => unknown;
}

const OPEN = 1;

export interface WsClient {
  api: BlksnapApi;
  /** Closes the socket for good (no reconnect). */
  close(): void;
}

export function createWsClient(options: WsClientOptions): WsClient {
  const delays = options.reconnectDelaysMs ?? [500, 1000, 2000, 5000];
  const setTimer = options.setTimer ?? ((fn: () => void, ms: number) => setTimeout(fn, ms));
  const pending = new Map<number, (result: Result<unknown>) => void>();
  const queue: string[] = [];
  const listeners = new Map<EventName, Set<(payload: never) => void>>();
  let nextId = 1;
  let socket: SocketLike | null = null;
  let attempts = 0;
  let closed = false;
  let unauthorized = false;
  /** The socket dropped since the last open. */
  let lost = false;
  /** A reconnect is scheduled (one at a time, however many sockets a request opened meanwhile fail). */
  let retryScheduled = false;

  function emit<K extends EventName>(event: K, payload: EventMap[K]): void {
    for (const cb of listeners.get(event) ?? []) {
      try {
        (cb as (p: EventMap[K]) => void)(payload);
      } catch (e) {
        console.error(`listener of ${event} failed`, e);
      }
    }
  }

  function failPending(code: 'HELPER_UNAVAILABLE' | 'UNAUTHORIZED', message: string): void {
    const waiting = [...pending.values()];
    pending.clear();
    queue.length = 0;
    for (const resolve of waiting) resolve(err(code, message));
  }

  function connect(): void {
    // One socket at a time: a request may have connected during the reconnect delay.
    if (closed || unauthorized || socket !== null) return;
    const s = options.createSocket(options.url);
    socket = s;
    s.onopen = () => {
      attempts = 0;
      for (const frame of queue.splice(0)) s.send(frame);
      if (lost) {
        // Back after a drop: the server may not repeat the helper state, so ask for it.
        lost = false;
        void request('getStatus', undefined).then((r) => {
          if (r.ok) emit('onHelperState', (r.value as AppStatus).helper);
        });
      }
    };
    s.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return;
      const message = parseServerMessage(ev.data);
      if (message === null) {
        console.warn('ignoring a malformed message from the server');
        return;
      }
      if ('event' in message) {
        emit(message.event, message.payload);
        return;
      }
      const resolve = pending.get(message.id);
      if (resolve) {
        pending.delete(message.id);
        resolve(message.result);
      }
    };
    s.onerror = () => {
      // onclose follows and does the work.
    };
    s.onclose = (ev) => {
      if (socket !== s) return;
      socket = null;
      if (ev.code === WS_CLOSE_UNAUTHORIZED) {
        unauthorized = true;
        failPending('UNAUTHORIZED', 'The server refused the access token. Open the address the server printed.');
        emit('onHelperState', { state: 'stopped', message: 'Not authorized: open the address with the token the server printed.' });
        return;
      }
      failPending('HELPER_UNAVAILABLE', 'The connection to the server was lost.');
      if (closed) return;
      lost = true;
      emit('onHelperState', { state: 'lost', message: 'The connection to the server was lost; reconnecting…' });
      const delay = delays[Math.min(attempts, delays.length - 1)] ?? 1000;
      attempts++;
      if (retryScheduled) return;
      retryScheduled = true;
      setTimer(() => {
        retryScheduled = false;
        connect();
      }, delay);
    };
  }

  function request(method: RequestName, params: unknown): Promise<Result<unknown>> {
    if (unauthorized) {
      return Promise.resolve(err('UNAUTHORIZED', 'The server refused the access token.'));
    }
    if (closed) return Promise.resolve(err('HELPER_UNAVAILABLE', 'The client is closed.'));
    const id = nextId++;
    const frame = encodeRequest(params === undefined ? { id, method } : { id, method, params });
    return new Promise((resolve) => {
      pending.set(id, resolve);
      if (socket !== null && socket.readyState === OPEN) socket.send(frame);
      else {
        queue.push(frame);
        if (socket === null) connect();
      }
    });
  }

  const api: Record<string, unknown> = {};
  for (const m of CONTRACT_METHODS) {
    if (m.event) {
      const name = m.name as EventName;
      api[name] = (callback: (payload: never) => void) => {
        let set = listeners.get(name);
        if (!set) {
          set = new Set();
          listeners.set(name, set);
        }
        set.add(callback);
        return () => {
          set.delete(callback);
        };
      };
    } else {
      const name = m.name as RequestName;
      api[name] = m.hasParams ? (params: unknown) => request(name, params) : () => request(name, undefined);
    }
  }

  connect();

  return {
    api: api as unknown as BlksnapApi,
    close() {
      closed = true;
      const s = socket;
      socket = null;
      failPending('HELPER_UNAVAILABLE', 'The client is closed.');
      s?.close();
    },
  };
}
