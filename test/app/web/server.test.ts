import { request } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startWebServer } from '../../../app/web/server.js';
import type { WebServer } from '../../../app/web/server.js';
import type { BlksnapApi } from '../../../app/shared/contract.js';
import { ok } from '../../../app/shared/result.js';
import type { AppStatus, SnapshotEventEntry } from '../../../app/shared/types.js';
import { parseServerMessage } from '../../../app/shared/wire.js';
import type { ServerMessage } from '../../../app/shared/wire.js';
import { fixtureLaunch, tempDirs } from '../bridge/helper-fixture.js';
import type { TempDirs } from '../bridge/helper-fixture.js';

interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers: { Host: `127.0.0.1:${port}`, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Attempts a WebSocket upgrade by hand: 101, or the refusal's status. */
function upgradeStatus(port: number, path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path,
      headers: {
        Host: `127.0.0.1:${port}`,
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        ...headers,
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

class WireClient {
  readonly messages: ServerMessage[] = [];
  private nextId = 1;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const parsed = parseServerMessage(String(data));
      if (parsed !== null) this.messages.push(parsed);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<WireClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      const client = new WireClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
    });
  }

  async until<T>(pick: () => T | undefined, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = pick();
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error('timed out waiting for a message');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  async call(method: string, params?: unknown, timeoutMs?: number): Promise<ServerMessage> {
    const id = this.nextId++;
    this.ws.send(JSON.stringify(params === undefined ? { id, method } : { id, method, params }));
    return this.until(() => this.messages.find((m) => 'id' in m && m.id === id), timeoutMs);
  }

  close(): void {
    this.ws.close();
  }
}

function fakeApi(): { api: BlksnapApi; emitSnapshotEvent: (e: SnapshotEventEntry) => void } {
  const listeners = new Set<(e: SnapshotEventEntry) => void>();
  const status: AppStatus = {
    driver: 'embedded',
    driverVersion: { major: 1, minor: 0, revision: 0, build: 0 },
    appVersion: '1.2.3',
    protocolVersion: 1,
    capabilities: ['cbt-active-table'],
    helper: { state: 'connected' },
  };
  const api = new Proxy({} as Record<string, unknown>, {
    get: (_t, name) => {
      if (name === 'getStatus') return async () => ok(status);
      if (name === 'listDevices') return async () => ok([]);
      if (name === 'onSnapshotEvent') {
        return (cb: (e: SnapshotEventEntry) => void) => {
          listeners.add(cb);
          return () => listeners.delete(cb);
        };
      }
      if (typeof name === 'string' && name.startsWith('on')) return () => () => {};
      return async () => ok(null);
    },
  }) as unknown as BlksnapApi;
  return { api, emitSnapshotEvent: (e) => listeners.forEach((l) => l(e)) };
}

/** An IPv4 address of this machine other than loopback (the loopback-only test needs one). */
const external = Object.values(networkInterfaces())
  .flat()
  .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal);

describe('browser-mode server: access control', () => {
  let dirs: TempDirs;
  let server: WebServer;
  const logs: string[] = [];
  let fake: ReturnType<typeof fakeApi>;

  beforeAll(async () => {
    dirs = tempDirs('blksnap-web-');
    const staticDir = join(dirs.root, 'static');
    mkdirSync(join(staticDir, 'assets'), { recursive: true });
    writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>Blksnap Manager</title><script type="module" src="./assets/app.js"></script>');
    writeFileSync(join(staticDir, 'assets', 'app.js'), 'console.log("app");');
    writeFileSync(join(dirs.root, 'secret.txt'), 'outside the static dir');
    fake = fakeApi();
    server = await startWebServer({ staticDir, log: (l) => logs.push(l), api: fake.api });
  });

  afterAll(async () => {
    await server.close();
    dirs.cleanup();
  });

  it('binds 127.0.0.1 and prints a URL carrying a 32-byte base64url token', () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/?token=${server.token}`);
    expect(server.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('refuses HTTP requests without the token or with a wrong one (401)', async () => {
    expect((await get(server.port, '/')).status).toBe(401);
    expect((await get(server.port, '/assets/app.js')).status).toBe(401);
    expect((await get(server.port, '/?token=wrong')).status).toBe(401);
    expect((await get(server.port, '/', { Cookie: `blksnap_token_${server.port}=wrong` })).status).toBe(401);
    // the token of another port's cookie does not count
    expect((await get(server.port, '/', { Cookie: `blksnap_token_1=${server.token}` })).status).toBe(401);
  });

  it('refuses a wrong Host header (DNS rebinding), even with the token (421)', async () => {
    const answer = await get(server.port, `/?token=${server.token}`, { Host: `evil.example:${server.port}` });
    expect(answer.status).toBe(421);
    expect((await get(server.port, '/', { Host: `127.0.0.1:${server.port + 1}` })).status).toBe(421);
  });

  it('trades the query token for an HttpOnly SameSite=Strict cookie and a fragment', async () => {
    const answer = await get(server.port, `/?token=${server.token}`);
    expect(answer.status).toBe(303);
    expect(answer.headers.location).toBe(`/#token=${server.token}`);
    const cookie = answer.headers['set-cookie']?.[0] ?? '';
    expect(cookie).toBe(`blksnap_token_${server.port}=${server.token}; HttpOnly; SameSite=Strict; Path=/`);
  });

  it('never redirects off this server after the token exchange ("//host" paths)', async () => {
    const answer = await get(server.port, `/.//evil.example/x?token=${server.token}`); // pathname "//evil.example/x"
    expect(answer.status).toBe(303);
    expect(answer.headers.location).toBe(`/evil.example/x#token=${server.token}`);
  });

  it('serves the renderer with the cookie, with the strict CSP header', async () => {
    const cookie = { Cookie: `blksnap_token_${server.port}=${server.token}` };
    const page = await get(server.port, '/', cookie);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.body).toContain('Blksnap Manager');
    const csp = String(page.headers['content-security-policy']);
    for (const directive of [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data:",
      "object-src 'none'",
      "base-uri 'none'",
      "frame-ancestors 'none'",
    ]) {
      expect(csp).toContain(directive);
    }
    expect(csp).toContain(`connect-src 'self' ws://127.0.0.1:${server.port}`);
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    const js = await get(server.port, '/assets/app.js', cookie);
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toContain('text/javascript');
    // nothing outside the static directory
    expect((await get(server.port, '/../secret.txt', cookie)).body).not.toContain('outside');
    expect((await get(server.port, '/%2e%2e/secret.txt', cookie)).body).not.toContain('outside');
    expect((await get(server.port, '/assets%2f..%2f..%2fsecret.txt', cookie)).status).toBe(400);
    expect((await get(server.port, '/missing.js', cookie)).status).toBe(404);
    expect((await get(server.port, '/', cookie, 'POST')).status).toBe(405);
  });

  it('refuses WebSocket upgrades without the token, with a wrong one, a wrong Host or a foreign Origin', async () => {
    expect(await upgradeStatus(server.port, '/ws')).toBe(401);
    expect(await upgradeStatus(server.port, '/ws?token=')).toBe(401);
    expect(await upgradeStatus(server.port, '/ws?token=nope')).toBe(401);
    expect(await upgradeStatus(server.port, `/ws?token=${server.token}`, { Host: `attacker.example:${server.port}` })).toBe(421);
    expect(await upgradeStatus(server.port, `/ws?token=${server.token}`, { Origin: 'http://attacker.example' })).toBe(403);
    expect(await upgradeStatus(server.port, `/ws?token=${server.token}`)).toBe(101);
    expect(await upgradeStatus(server.port, '/ws', { Cookie: `blksnap_token_${server.port}=${server.token}` })).toBe(101);
  });

  it('survives clients that reset the connection right after an upgrade request it refuses', async () => {
    const crashes: unknown[] = [];
    const onCrash = (error: unknown): void => void crashes.push(error);
    process.on('uncaughtException', onCrash);
    try {
      for (let i = 0; i < 10; i++) {
        await new Promise<void>((resolve, reject) => {
          const socket = connect(server.port, '127.0.0.1', () => {
            socket.write(
              `GET /ws?token=wrong HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
                'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
            );
            socket.resetAndDestroy();
            resolve();
          });
          socket.once('error', reject);
        });
      }
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      process.off('uncaughtException', onCrash);
    }
    expect(crashes.map(String)).toEqual([]);
    expect((await get(server.port, '/')).status).toBe(401);
  });

  it('answers wire requests, errors included, and pushes events', async () => {
    const client = await WireClient.open(`ws://127.0.0.1:${server.port}/ws?token=${server.token}`, {
      Origin: `http://127.0.0.1:${server.port}`,
    });
    try {
      const status = await client.call('getStatus');
      expect(status).toMatchObject({ result: { ok: true, value: { appVersion: '1.2.3' } } });
      const unknown = await client.call('formatDisk', {});
      expect(unknown).toMatchObject({ result: { ok: false, error: { code: 'PROTOCOL' } } });
      const bad = await client.call('cbtInfo', { device: 42 });
      expect(bad).toMatchObject({ result: { ok: false, error: { code: 'EINVAL' } } });
      const extra = await client.call('listDevices', { sneaky: true });
      expect(extra).toMatchObject({ result: { ok: false, error: { code: 'EINVAL' } } });
      const event: SnapshotEventEntry = { code: 'no_space', snapshotId: 'abc', timeMs: 1, requestedSectors: 8 };
      fake.emitSnapshotEvent(event);
      const pushed = await client.until(() => client.messages.find((m) => 'event' in m));
      expect(pushed).toEqual({ event: 'onSnapshotEvent', payload: event });
    } finally {
      client.close();
    }
  });

  it('closes a socket that sends an oversized frame, and keeps serving others', async () => {
    const url = `ws://127.0.0.1:${server.port}/ws?token=${server.token}`;
    const big = await WireClient.open(url);
    const closed = new Promise<number>((resolve) => big.ws.once('close', (code) => resolve(code)));
    big.ws.send(JSON.stringify({ id: 1, method: 'listDevices', params: { pad: 'x'.repeat(2 * 1024 * 1024) } }));
    expect(await closed).toBe(1009);
    const next = await WireClient.open(url);
    try {
      expect(await next.call('listDevices')).toMatchObject({ result: { ok: true, value: [] } });
    } finally {
      next.close();
    }
  });

  it('finishes (and logs) a static download the browser aborts half-way', async () => {
    const staticDir = join(dirs.root, 'static');
    writeFileSync(join(staticDir, 'assets', 'big.js'), 'x'.repeat(32 * 1024 * 1024));
    await new Promise<void>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: server.port,
          path: '/assets/big.js',
          headers: { Host: `127.0.0.1:${server.port}`, Cookie: `blksnap_token_${server.port}=${server.token}` },
        },
        (res) => {
          res.once('data', () => {
            req.destroy(); // the tab was closed
            resolve();
          });
        },
      );
      req.on('error', () => undefined);
      req.once('response', () => undefined);
      req.end();
      setTimeout(() => reject(new Error('no data')), 5000);
    });
    for (let i = 0; i < 50 && !logs.some((l) => l.startsWith('GET /assets/big.js')); i++) await new Promise((r) => setTimeout(r, 20));
    expect(logs.find((l) => l.startsWith('GET /assets/big.js'))).toBeDefined();
  });

  it.skipIf(external === undefined)('[network interface] listens on loopback only (refuses a connection to another IPv4 address)', async () => {
    if (external === undefined) throw new Error('no other interface');
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect(server.port, external.address);
      s.once('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
  });

  it('never writes the token into its logs', () => {
    expect(logs.length).toBeGreaterThan(10);
    expect(logs.some((l) => l.includes('/ws'))).toBe(true);
    for (const line of logs) expect(line).not.toContain(server.token);
    expect(logs.join('\n')).not.toContain('token=');
  });
});

describe('browser-mode server over a real helper', () => {
  let dirs: TempDirs;
  let server: WebServer | null = null;

  afterEach(async () => {
    await server?.close();
    const pid = server?.bridge?.link.startedPid ?? null;
    if (pid !== null) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    dirs.cleanup();
  });

  it('starts a helper and answers listDevices / createLabDisk over the WebSocket', async () => {
    dirs = tempDirs('blksnap-web-helper-');
    const logs: string[] = [];
    server = await startWebServer({
      staticDir: join(dirs.root, 'static'),
      helperSocket: dirs.socketPath,
      stateDir: dirs.stateDir,
      launch: fixtureLaunch(dirs),
      log: (l) => logs.push(l),
    });
    const client = await WireClient.open(`ws://127.0.0.1:${server.port}/ws?token=${server.token}`);
    try {
      const created = await client.call('createLabDisk', { name: 'webdisk', sizeBytes: 4 * 1024 * 1024 }, 30_000);
      expect(created).toMatchObject({ result: { ok: true, value: { id: 'webdisk', kind: 'engine' } } });
      const listed = await client.call('listDevices');
      expect(listed).toMatchObject({ result: { ok: true } });
      if ('result' in listed && listed.result.ok) {
        const ids = (listed.result.value as { id: string }[]).map((d) => d.id);
        expect(ids).toContain('webdisk');
      }
      const status = await client.call('getStatus');
      expect(status).toMatchObject({ result: { ok: true, value: { driver: 'embedded', helper: { state: 'connected' } } } });
    } finally {
      client.close();
    }
    for (const line of logs) expect(line).not.toContain(server.token);
  });
});
