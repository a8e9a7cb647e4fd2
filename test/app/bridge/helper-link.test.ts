/** The bridge's helper link against a scripted helper on a Unix socket (no real helper needed). */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createBridge } from '../../../app/bridge/bridge.js';
import type { SnapshotEventEntry } from '../../../app/shared/types.js';

const ID = '0b7c1a52-8d7e-4c36-9a57-2f0f3bd0e0a1';
const HELLO = { protocolVersion: 1, driver: 'embedded', driverVersion: '1.0.0.0', capabilities: ['events'] };

type Script = (request: { id: number; method: string }, socket: Socket) => void;

async function fakeHelper(script: Script): Promise<{ socketPath: string; server: Server; cleanup: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'bm-link-'));
  const socketPath = join(dir, 'helper.sock');
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const request = JSON.parse(buffer.slice(0, nl)) as { id: number; method: string };
        buffer = buffer.slice(nl + 1);
        if (request.method === 'hello') socket.write(JSON.stringify({ id: request.id, result: HELLO }) + '\n');
        else script(request, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    server,
    cleanup: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe('HelperLink with a scripted helper', () => {
  it('delivers an event the helper sends right behind its answer to subscribe', async () => {
    const event = { code: 'low_free_space', snapshotId: ID, timeMs: 1, requestedSectors: 8 };
    const helper = await fakeHelper((request, socket) => {
      if (request.method === 'subscribe') {
        // both lines reach the app in one read
        socket.write(
          JSON.stringify({ id: request.id, result: { topics: ['event', 'snapshot', 'devices', 'progress', 'workload'] } }) +
            '\n' +
            JSON.stringify({ method: 'event', params: event }) +
            '\n',
        );
      }
    });
    cleanups.push(helper.cleanup);
    const bridge = createBridge({ socketPath: helper.socketPath, launch: null, appVersion: '0', labDir: helper.socketPath });
    cleanups.push(() => bridge.close());
    const events: SnapshotEventEntry[] = [];
    bridge.api.onSnapshotEvent((e) => events.push(e));
    await bridge.start();
    expect(bridge.link.state.state).toBe('connected');
    await new Promise((r) => setTimeout(r, 20));
    expect(events).toEqual([event]);
  });

  it('answers a request the helper drops mid-way with HELPER_LOST at once', async () => {
    const helper = await fakeHelper((request, socket) => {
      if (request.method === 'subscribe') socket.write(JSON.stringify({ id: request.id, result: { topics: [] } }) + '\n');
      if (request.method === 'devices.list') setTimeout(() => socket.destroy(), 20); // the helper dies while working
    });
    cleanups.push(helper.cleanup);
    const bridge = createBridge({ socketPath: helper.socketPath, launch: null, appVersion: '0', labDir: helper.socketPath, callTimeoutMs: 10_000 });
    cleanups.push(() => bridge.close());
    await bridge.start();
    const started = Date.now();
    const result = await bridge.api.listDevices();
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.code).toBe('HELPER_LOST');
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(bridge.link.state.state).toBe('lost');
    const later = await bridge.api.listDevices();
    expect(!later.ok && later.error.code).toBe('HELPER_LOST');
  });
});
