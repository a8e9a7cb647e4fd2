import { describe, expect, it } from 'vitest';
import {
  encodeEvent,
  encodeRequest,
  encodeResponse,
  parseClientMessage,
  parseServerMessage,
  wsUrl,
} from '../../../app/shared/wire.js';

describe('wire format', () => {
  it('round-trips a request', () => {
    const text = encodeRequest({ id: 1, method: 'snapshotTake', params: { snapshotId: 'a' } });
    expect(JSON.parse(text)).toEqual({ id: 1, method: 'snapshotTake', params: { snapshotId: 'a' } });
    expect(parseClientMessage(text)).toEqual({
      ok: true,
      request: { id: 1, method: 'snapshotTake', params: { snapshotId: 'a' } },
    });
  });

  it('drops null params and reports malformed client frames with the id when it has one', () => {
    expect(parseClientMessage('{"id":2,"method":"listDevices","params":null}')).toEqual({
      ok: true,
      request: { id: 2, method: 'listDevices' },
    });
    expect(parseClientMessage('nope')).toMatchObject({ ok: false, id: null });
    expect(parseClientMessage('{"id":0,"method":"listDevices"}')).toMatchObject({ ok: false, id: null });
    expect(parseClientMessage('{"id":3,"method":"rmrf"}')).toMatchObject({ ok: false, id: 3 });
    expect(parseClientMessage('{"id":4,"method":"onSnapshotEvent"}')).toMatchObject({ ok: false, id: 4 });
    expect(parseClientMessage('[1]')).toMatchObject({ ok: false, id: null });
  });

  it('parses responses and events, rejects malformed ones', () => {
    expect(parseServerMessage(encodeResponse(5, { ok: true, value: [1] }))).toEqual({
      id: 5,
      result: { ok: true, value: [1] },
    });
    expect(parseServerMessage(encodeResponse(6, { ok: false, error: { code: 'EBUSY', message: 'm' } }))).toEqual({
      id: 6,
      result: { ok: false, error: { code: 'EBUSY', message: 'm' } },
    });
    const ev = encodeEvent('onHelperState', { state: 'lost', message: 'x' });
    expect(parseServerMessage(ev)).toEqual({ event: 'onHelperState', payload: { state: 'lost', message: 'x' } });
    expect(parseServerMessage('{"id":7,"result":{"ok":false,"error":{"code":"EWAT","message":"m"}}}')).toBeNull();
    expect(parseServerMessage('{"id":7,"result":{"ok":true}}')).toBeNull();
    expect(parseServerMessage('{"event":"onNothing","payload":{}}')).toBeNull();
    expect(parseServerMessage('{')).toBeNull();
  });

  it('builds the socket URL from the page origin', () => {
    expect(wsUrl('http://127.0.0.1:8080', 'a b')).toBe('ws://127.0.0.1:8080/ws?token=a%20b');
    expect(wsUrl('https://host', 't')).toBe('wss://host/ws?token=t');
  });
});
