import { describe, expect, it } from 'vitest';
import { createWsClient } from '../../../renderer/src/api/ws-client.js';
import type { SocketLike } from '../../../renderer/src/api/ws-client.js';
import { WS_CLOSE_UNAUTHORIZED, encodeEvent, encodeResponse } from '../../../app/shared/wire.js';

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: string[] = [];
  closed = false;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(readonly url: string) {}
  send(data: string) {
    this.sent.push(data);
  }
  close() {
    this.closed = true;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(text: string) {
    this.onmessage?.({ data: text });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
}

function setup() {
  const sockets: FakeSocket[] = [];
  const timers: (() => void)[] = [];
  const client = createWsClient({
    url: 'ws://127.0.0.1:1/ws?token=t',
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    setTimer: (fn) => timers.push(fn),
  });
  return { client, sockets, timers };
}

describe('browser-mode WebSocket client', () => {
  it('connects at once, queues requests until open, matches answers by id', async () => {
    const { client, sockets } = setup();
    expect(sockets).toHaveLength(1);
    expect(sockets[0]?.url).toBe('ws://127.0.0.1:1/ws?token=t');
    const p1 = client.api.listDevices();
    const p2 = client.api.snapshotTake({ snapshotId: 's' });
    const s = sockets[0] as FakeSocket;
    expect(s.sent).toEqual([]);
    s.open();
    expect(s.sent.map((f) => JSON.parse(f) as unknown)).toEqual([
      { id: 1, method: 'listDevices' },
      { id: 2, method: 'snapshotTake', params: { snapshotId: 's' } },
    ]);
    s.receive(encodeResponse(2, { ok: false, error: { code: 'EINVAL', message: 'not created' } }));
    s.receive(encodeResponse(1, { ok: true, value: [] }));
    expect(await p1).toEqual({ ok: true, value: [] });
    expect(await p2).toEqual({ ok: false, error: { code: 'EINVAL', message: 'not created' } });
  });

  it('dispatches events to subscribers until they unsubscribe, ignores malformed frames', () => {
    const { client, sockets } = setup();
    const s = sockets[0] as FakeSocket;
    s.open();
    const got: unknown[] = [];
    const off = client.api.onSnapshotEvent((e) => got.push(e));
    const event = { code: 'no_space', snapshotId: 's', timeMs: 1, requestedSectors: 8 } as const;
    s.receive(encodeEvent('onSnapshotEvent', event));
    s.receive('garbage');
    s.receive(JSON.stringify({ event: 'onNope', payload: {} }));
    off();
    s.receive(encodeEvent('onSnapshotEvent', event));
    expect(got).toEqual([event]);
  });

  it('answers pending requests with HELPER_UNAVAILABLE on a drop, reports lost, and reconnects', async () => {
    const { client, sockets, timers } = setup();
    const states: unknown[] = [];
    client.api.onHelperState((h) => states.push(h.state));
    const s = sockets[0] as FakeSocket;
    s.open();
    const pending = client.api.getStatus();
    s.drop();
    const r = await pending;
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('HELPER_UNAVAILABLE');
    expect(states).toEqual(['lost']);
    expect(timers).toHaveLength(1);
    timers[0]?.();
    expect(sockets).toHaveLength(2);
    const s2 = sockets[1] as FakeSocket;
    const again = client.api.listFilesystems();
    s2.open();
    const frames = s2.sent.map((f) => JSON.parse(f) as { id: number; method: string });
    expect(frames.map((f) => f.method)).toEqual(['listFilesystems', 'getStatus']);
    s2.receive(encodeResponse(frames[0]?.id ?? 0, { ok: true, value: [] }));
    expect(await again).toEqual({ ok: true, value: [] });
    // The status answer after the reconnect reports the helper state to subscribers.
    s2.receive(
      encodeResponse(frames[1]?.id ?? 0, {
        ok: true,
        value: { driver: 'embedded', driverVersion: null, appVersion: '0', protocolVersion: 1, capabilities: [], helper: { state: 'connected' } },
      }),
    );
    await new Promise((r) => setTimeout(r, 0));
    expect(states).toEqual(['lost', 'connected']);
  });

  it('stops after UNAUTHORIZED and answers requests with it', async () => {
    const { client, sockets, timers } = setup();
    const pending = client.api.listDevices();
    (sockets[0] as FakeSocket).drop(WS_CLOSE_UNAUTHORIZED);
    const r = await pending;
    expect(!r.ok && r.error.code).toBe('UNAUTHORIZED');
    expect(timers).toHaveLength(0);
    const later = await client.api.listDevices();
    expect(!later.ok && later.error.code).toBe('UNAUTHORIZED');
    expect(sockets).toHaveLength(1);
  });

  it('close() ends the client without reconnecting', async () => {
    const { client, sockets, timers } = setup();
    (sockets[0] as FakeSocket).open();
    client.close();
    expect((sockets[0] as FakeSocket).closed).toBe(true);
    (sockets[0] as FakeSocket).drop();
    expect(timers).toHaveLength(0);
    const r = await client.api.getStatus();
    expect(!r.ok && r.error.code).toBe('HELPER_UNAVAILABLE');
  });
});

describe('browser-mode WebSocket client: one socket at a time', () => {
  it('a request during the reconnect delay connects once: the timer then opens no second socket', async () => {
    const { client, sockets, timers } = setup();
    const events: unknown[] = [];
    client.api.onSnapshotEvent((e) => events.push(e));
    (sockets[0] as FakeSocket).open();
    (sockets[0] as FakeSocket).drop();
    expect(timers).toHaveLength(1);
    // A poll runs while the reconnect timer waits: it connects now.
    const polled = client.api.listSnapshots();
    expect(sockets).toHaveLength(2);
    timers[0]?.();
    // The timer finds a socket under way and leaves it be.
    expect(sockets).toHaveLength(2);
    const s2 = sockets[1] as FakeSocket;
    s2.open();
    const frame = JSON.parse(s2.sent[0] ?? '{}') as { id: number };
    s2.receive(encodeResponse(frame.id, { ok: true, value: [] }));
    expect(await polled).toEqual({ ok: true, value: [] });
    const event = { code: 'no_space', snapshotId: 's', timeMs: 1, requestedSectors: 8 } as const;
    s2.receive(encodeEvent('onSnapshotEvent', event));
    expect(events).toEqual([event]);
  });

  it('while the server stays down, requests do not pile up reconnect timers (one retry at a time)', async () => {
    const { client, sockets, timers } = setup();
    (sockets[0] as FakeSocket).open();
    (sockets[0] as FakeSocket).drop();
    expect(timers).toHaveLength(1);
    // Polls every second while the server refuses connections.
    for (let i = 0; i < 5; i++) {
      const r = client.api.listSnapshots();
      (sockets.at(-1) as FakeSocket).drop();
      expect(((await r) as { ok: boolean }).ok).toBe(false);
    }
    expect(sockets).toHaveLength(6);
    // Still the one retry scheduled by the first drop.
    expect(timers).toHaveLength(1);
    timers[0]?.();
    expect(sockets).toHaveLength(7);
    (sockets[6] as FakeSocket).drop();
    expect(timers).toHaveLength(2);
  });
});
