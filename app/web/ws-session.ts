/**
 * One authenticated WebSocket client speaking the wire format of app/shared/wire.ts:
 * requests in, answers out (never dropped when they carry an id), and every event
 * stream of the contract pushed to it.
 */
import type { WebSocket } from 'ws';
import type { BlksnapApi, EventName } from '../shared/contract.js';
import { EVENT_NAMES } from '../shared/contract.js';
import { err } from '../shared/result.js';
import { encodeEvent, encodeResponse, parseClientMessage } from '../shared/wire.js';
import type { EventMap } from '../shared/contract.js';
import { dispatchRequest } from '../bridge/dispatch.js';

/** Most requests one client may have in flight; more are answered EAGAIN. */
export const MAX_IN_FLIGHT = 64;

export function attachSession(ws: WebSocket, api: BlksnapApi, log: (line: string) => void): void {
  let inFlight = 0;
  const send = (text: string): void => {
    if (ws.readyState === ws.OPEN) ws.send(text);
  };
  const unsubscribers = EVENT_NAMES.map(<K extends EventName>(name: K) => {
    const subscribe = api[name] as (cb: (payload: EventMap[K]) => void) => () => void;
    return subscribe((payload) => send(encodeEvent(name, payload)));
  });
  // A protocol error (e.g. a frame over maxPayload) closes this socket, never the server.
  ws.on('error', (error) => log(`ws: ${error.message}`));
  ws.on('close', () => {
    for (const unsubscribe of unsubscribers) unsubscribe();
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      ws.close(1003, 'text frames only');
      return;
    }
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    const parsed = parseClientMessage(text);
    if (!parsed.ok) {
      if (parsed.id !== null) send(encodeResponse(parsed.id, err('PROTOCOL', 'Malformed request.', parsed.reason)));
      else log(`ws: ignored a frame without a usable id (${parsed.reason})`);
      return;
    }
    const { id, method, params } = parsed.request;
    if (inFlight >= MAX_IN_FLIGHT) {
      send(encodeResponse(id, err('EAGAIN', 'Too many requests at once.')));
      return;
    }
    inFlight++;
    void dispatchRequest(api, method, params).then((result) => {
      inFlight--;
      send(encodeResponse(id, result));
    });
  });
}
