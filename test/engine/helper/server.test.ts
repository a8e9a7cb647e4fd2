/**
 * HelperServer + ClientConnection + HelperService in-process, over a real Unix
 * socket, with a scripted driver: what one client does must not cost another its events.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlksnapDriver } from '../../../engine/abi/driver.js';
import type { SnapshotEvent } from '../../../engine/abi/types.js';
import { HelperServer } from '../../../engine/helper/server.js';
import { MAX_CLIENTS, MAX_LINE_LENGTH } from '../../../engine/protocol/limits.js';
import { HelperClient } from '../../../engine/protocol/client.js';
import { SocketTransport } from '../../../engine/cli/socket-transport.js';
import { HelperService } from '../../../engine/helper/service.js';
import { SettingsStore } from '../../../engine/helper/settings-store.js';
import { kernelBackends } from './kernel-backends.js';

const ID = '0b7c1a52-8d7e-4c36-9a57-2f0f3bd0e0a1';

/** A driver whose event queue the test fills (push) and which knows one snapshot. */
function scriptedDriver(): { driver: BlksnapDriver; push: (event: SnapshotEvent) => void } {
  const queue: SnapshotEvent[] = [];
  let wake: (() => void) | null = null;
  const driver = {
    kind: 'kernel',
    version: async () => ({ major: 6, minor: 0, revision: 0, build: 0 }),
    snapshotCollect: async () => [ID],
    snapshotWaitEvent: async (_id: string, ms: number) => {
      if (queue.length === 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = null;
      }
      return queue.shift() ?? null;
    },
    close: async () => undefined,
  } as unknown as BlksnapDriver;
  return {
    driver,
    push: (event) => {
      queue.push(event);
      wake?.();
    },
  };
}

class Raw {
  private buffer = '';
  /** Resolves when the server has closed the connection. */
  readonly ended: Promise<void>;
  private readonly waiting: ((line: Record<string, unknown>) => void)[] = [];
  private readonly lines: Record<string, unknown>[] = [];

  constructor(readonly socket: Socket) {
    this.ended = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = JSON.parse(this.buffer.slice(0, nl)) as Record<string, unknown>;
        this.buffer = this.buffer.slice(nl + 1);
        const w = this.waiting.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
  }

  static open(path: string): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = connect(path);
      s.once('error', reject);
      s.once('connect', () => resolve(new Raw(s)));
    });
  }

  send(message: unknown): void {
    this.socket.write(JSON.stringify(message) + '\n');
  }

  next(): Promise<Record<string, unknown>> {
    const line = this.lines.shift();
    if (line) return Promise.resolve(line);
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}

describe('HelperServer with several clients', () => {
  let dir: string;
  let server: HelperServer;
  let service: HelperService;
  let push: (event: SnapshotEvent) => void;
  let socketPath: string;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-server-'));
    socketPath = join(dir, 'helper.sock');
    const scripted = scriptedDriver();
    push = scripted.push;
    const settings = new SettingsStore(dir);
    await settings.load();
    server = new HelperServer();
    service = new HelperService(
      kernelBackends(scripted.driver),
      settings,
      (topic, params) => server.broadcast(topic, params),
    );
    server.attach(service);
    await service.adoptExisting();
    await server.listen(socketPath);
  });

  afterEach(async () => {
    await service.stopPumps();
    await server.close(100);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a client that disconnected while waiting for an event does not take the next one from a client still waiting', async () => {
    const gone = await Raw.open(socketPath);
    gone.send({ id: 1, method: 'snapshotWaitEvent', params: { id: ID, timeoutMs: 60_000 } });
    await new Promise((r) => setTimeout(r, 50)); // its wait is registered
    gone.socket.destroy(); // e.g. Ctrl+C on "blksnap-manager snapshot_wait_event"
    await new Promise((r) => setTimeout(r, 50));

    const waiting = await Raw.open(socketPath);
    waiting.send({ id: 2, method: 'snapshotWaitEvent', params: { id: ID, timeoutMs: 2_000 } });
    await new Promise((r) => setTimeout(r, 50));
    push({ code: 'low_free_space', snapshotId: ID, timeMs: 1, requestedSectors: 8 });
    expect(await waiting.next()).toMatchObject({ id: 2, result: { event: { code: 'low_free_space', requestedSectors: 8 } } });
    waiting.socket.destroy();
  });

  it(`refuses client ${MAX_CLIENTS + 1} with an EAGAIN error line and a hang-up; the others keep being served, and a freed slot is reused`, async () => {
    const clients: Raw[] = [];
    try {
      for (let i = 0; i < MAX_CLIENTS; i++) clients.push(await Raw.open(socketPath));
      // every one of them is served (also makes sure the server has registered them all)
      for (const [i, c] of clients.entries()) c.send({ id: i, method: 'version', params: {} });
      for (const [i, c] of clients.entries()) expect(await c.next()).toMatchObject({ id: i, result: { major: 6 } });
      expect(server.clientCount).toBe(MAX_CLIENTS);

      const extra = await Raw.open(socketPath);
      expect(await extra.next()).toEqual({
        id: null,
        error: {
          code: 'errno',
          errno: 'EAGAIN',
          message: expect.stringMatching(new RegExp(`^the helper serves at most ${MAX_CLIENTS} clients at once and all are connected; close one`)),
        },
      });
      await extra.ended;
      expect(server.clientCount).toBe(MAX_CLIENTS);
      // the protocol client fails at once with the helper's reason (no waiting for its 60 s timeout)
      const refused = new HelperClient(await SocketTransport.connect(socketPath), { timeoutMs: 60_000 });
      await expect(refused.hello('test')).rejects.toMatchObject({
        code: 'errno',
        errno: 'EAGAIN',
        message: expect.stringMatching(new RegExp(`^the helper refused this connection's request: the helper serves at most ${MAX_CLIENTS} clients`)),
      });
      expect(refused.closed).toBe(true);

      clients[0]?.send({ id: 'still', method: 'version', params: {} });
      expect(await clients[0]?.next()).toMatchObject({ id: 'still', result: { major: 6 } });

      const leaving = clients.shift() as Raw;
      leaving.socket.destroy();
      await leaving.ended;
      while (server.clientCount >= MAX_CLIENTS) await new Promise((r) => setTimeout(r, 5));
      const late = await Raw.open(socketPath);
      clients.push(late);
      late.send({ id: 1, method: 'version', params: {} });
      expect(await late.next()).toMatchObject({ id: 1, result: { major: 6 } });
    } finally {
      for (const c of clients) c.socket.destroy();
    }
  });

  it('cuts off a client whose line never ends once it passes the line limit, and serves the others meanwhile', async () => {
    const endless = await Raw.open(socketPath);
    const other = await Raw.open(socketPath);
    let received = 0;
    endless.socket.on('data', () => received++);
    // exactly the limit, without a newline: still a line that may end
    const piece = 'x'.repeat(64 * 1024);
    let sent = 0;
    while (sent < MAX_LINE_LENGTH) {
      endless.socket.write(piece);
      sent += piece.length;
    }
    other.send({ id: 1, method: 'version', params: {} });
    expect(await other.next()).toMatchObject({ id: 1, result: { major: 6 } });
    await new Promise((r) => setTimeout(r, 100)); // the server has read all of it
    expect(received).toBe(0);
    expect(endless.socket.destroyed).toBe(false);
    // one more piece passes the bound: the client keeps writing, the server says why and hangs up
    const writer = setInterval(() => {
      if (!endless.socket.destroyed) endless.socket.write(piece);
    }, 1);
    try {
      expect(await endless.next()).toEqual({
        id: null,
        error: {
          code: 'too_large',
          errno: 'E2BIG',
          message: expect.stringMatching(/^a message of \d+\+ characters is longer than the 1048576-character limit of the helper protocol; closing the connection$/),
        },
      });
      await endless.ended;
    } finally {
      clearInterval(writer);
    }
    other.send({ id: 2, method: 'version', params: {} });
    expect(await other.next()).toMatchObject({ id: 2, result: { major: 6 } });
    other.socket.destroy();
  });

  it('tells a client that arrives while the helper shuts down why it is not served (ECANCELED), then hangs up', async () => {
    server.state.shuttingDown = true;
    const late = await Raw.open(socketPath);
    expect(await late.next()).toEqual({ id: null, error: { code: 'shutting_down', errno: 'ECANCELED', message: 'the helper is shutting down' } });
    await late.ended;
    expect(server.clientCount).toBe(0);
  });
});
