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
  private readonly waiting: ((line: Record<string, unknown>) => void)[] = [];
  private readonly lines: Record<string, unknown>[] = [];

  constructor(readonly socket: Socket) {
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
});
