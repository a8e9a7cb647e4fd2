/**
 * Browser-mode wire format: the same contract over one WebSocket.
 *
 * Connection: `ws(s)://<same origin>/ws?token=<token>`. The server (app/web) prints
 * `/?token=<token>` to open; it answers with an HttpOnly cookie and a redirect to
 * `/#token=<token>`, and the page keeps the token in sessionStorage.
 * A wrong or missing token: the server refuses the upgrade with HTTP 401, or closes
 * with code 4401 (WS_CLOSE_UNAUTHORIZED).
 *
 * Every frame is one JSON text message:
 * - client -> server, a request:  `{ "id": 7, "method": "listDevices", "params": {...} }`
 *   (`params` omitted or null for requests without params; `id` a positive integer,
 *   unique among the client's requests in flight).
 * - server -> client, its answer: `{ "id": 7, "result": { "ok": true, "value": ... } }`
 *   or `{ "id": 7, "result": { "ok": false, "error": { "code": "EBUSY", "message": "..." } } }`.
 *   An unknown method or bad params is answered with a PROTOCOL / EINVAL error, never dropped.
 * - server -> client, an event:   `{ "event": "onSnapshotEvent", "payload": {...} }`.
 *   The server pushes every event stream to every authenticated client; the client
 *   dispatches locally to its subscribers (there is no subscribe message).
 *
 * Binary data is carried as base64 strings in the contract itself (CbtMapEntry.data),
 * so Electron IPC and this wire carry identical values.
 */
import { isEventName, isRequestName } from './contract.js';
import type { EventMap, EventName, RequestName } from './contract.js';
import { isErrorCode } from './result.js';
import type { Result } from './result.js';

/** The URL path of the WebSocket endpoint. */
export const WS_PATH = '/ws';
/** The query parameter (and URL fragment key) carrying the token. */
export const TOKEN_PARAM = 'token';
/** Close code for an unauthorized connection. */
export const WS_CLOSE_UNAUTHORIZED = 4401;

export interface WireRequest {
  id: number;
  method: RequestName;
  params?: unknown;
}

export interface WireResponse {
  id: number;
  result: Result<unknown>;
}

export interface WireEvent<K extends EventName = EventName> {
  event: K;
  payload: EventMap[K];
}

export type ServerMessage = WireResponse | WireEvent;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export type ParsedClientMessage =
  | { ok: true; request: WireRequest }
  /** id is set when the frame had a usable id, so the server can answer with an error. */
  | { ok: false; id: number | null; reason: string };

/** Parses a client frame (server side). Params are not validated here: see validateParams. */
export function parseClientMessage(text: string): ParsedClientMessage {
  const value = parseJson(text);
  if (!isRecord(value)) return { ok: false, id: null, reason: 'not a JSON object' };
  const id = isId(value['id']) ? value['id'] : null;
  if (id === null) return { ok: false, id: null, reason: 'missing or invalid id' };
  const method = value['method'];
  if (!isRequestName(method)) return { ok: false, id, reason: `unknown method ${JSON.stringify(method)}` };
  const request: WireRequest = { id, method };
  if (value['params'] !== undefined && value['params'] !== null) request.params = value['params'];
  return { ok: true, request };
}

function isResult(value: unknown): value is Result<unknown> {
  if (!isRecord(value)) return false;
  if (value['ok'] === true) return 'value' in value;
  if (value['ok'] !== false) return false;
  const error = value['error'];
  return isRecord(error) && isErrorCode(error['code']) && typeof error['message'] === 'string';
}

/** Parses a server frame (client side); null when malformed. Event payloads are trusted (same origin, token). */
export function parseServerMessage(text: string): ServerMessage | null {
  const value = parseJson(text);
  if (!isRecord(value)) return null;
  if ('event' in value) {
    const event = value['event'];
    if (!isEventName(event) || !isRecord(value['payload'])) return null;
    return { event, payload: value['payload'] as unknown as EventMap[typeof event] };
  }
  if (!isId(value['id']) || !isResult(value['result'])) return null;
  return { id: value['id'], result: value['result'] };
}

export function encodeRequest(request: WireRequest): string {
  return JSON.stringify(request);
}

export function encodeResponse(id: number, result: Result<unknown>): string {
  return JSON.stringify({ id, result });
}

export function encodeEvent<K extends EventName>(event: K, payload: EventMap[K]): string {
  return JSON.stringify({ event, payload });
}

/** The WebSocket URL for a page origin ("http://127.0.0.1:8080") and a token. */
export function wsUrl(origin: string, token: string): string {
  const base = origin.replace(/^http/, 'ws');
  return `${base}${WS_PATH}?${TOKEN_PARAM}=${encodeURIComponent(token)}`;
}
