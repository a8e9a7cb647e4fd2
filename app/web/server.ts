/**
 * Browser mode: the renderer and the contract served to a browser on 127.0.0.1 only.
 * HTTP serves renderer/dist with the app's strict CSP; one WebSocket per page carries
 * the contract (app/shared/wire.ts) to the bridge (app/bridge). Every request needs
 * the token (docs/browser-mode.md): `/?token=T` sets an HttpOnly SameSite=Strict
 * cookie and redirects to `/#token=T` (the page keeps it for its WebSocket URL).
 * Logs carry paths only, never query strings, so the token is never logged.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { join } from 'node:path';
import { contentSecurityPolicy } from '../bridge/csp.js';
import { createBridge } from '../bridge/bridge.js';
import type { Bridge } from '../bridge/bridge.js';
import type { LaunchCommand } from '../bridge/launch.js';
import { helperLaunchCommand } from '../bridge/launch.js';
import { defaultSocketPath, defaultStateDir, findProjectRoot, projectVersion } from '../bridge/paths.js';
import type { BlksnapApi } from '../shared/contract.js';
import { TOKEN_PARAM, WS_PATH } from '../shared/wire.js';
import { credentialOf, hostAllowed, newToken, originAllowed, sessionCookie } from './auth.js';
import { sendStatic } from './static-files.js';
import { attachSession } from './ws-session.js';

export interface WebServerOptions {
  /** 0 or omitted: a random free port. Always bound to 127.0.0.1. */
  port?: number;
  /** The helper socket (default $XDG_RUNTIME_DIR/blksnap-manager/helper.sock). */
  helperSocket?: string;
  /** The helper's state directory when one must be started (default ~/.local/state/blksnap-manager). */
  stateDir?: string;
  /** The built renderer (renderer/dist). */
  staticDir: string;
  /** Request and error lines (never containing the token). */
  log: (line: string) => void;
  /** How to start a helper when none runs (default: this Node on bin/blksnap-manager.mjs, embedded driver); null: never. */
  launch?: LaunchCommand | null;
  /** Serve this API instead of a bridge of our own (tests). */
  api?: BlksnapApi;
  /** A fixed token (tests); default 32 random bytes. */
  token?: string;
}

export interface WebServer {
  /** The URL to open: http://127.0.0.1:PORT/?token=TOKEN */
  url: string;
  token: string;
  port: number;
  /** The bridge this server made (null when options.api was given). */
  bridge: Bridge | null;
  close(): Promise<void>;
}

const SECURITY_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};

function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${reason.length + 1}\r\n\r\n${reason}\n`);
}

function pathOf(req: IncomingMessage): URL {
  try {
    return new URL(req.url ?? '/', 'http://127.0.0.1');
  } catch {
    return new URL('http://127.0.0.1/');
  }
}

function defaultLaunch(socketPath: string, stateDir: string): LaunchCommand | null {
  const root = findProjectRoot(import.meta.dirname);
  if (root === null) return null;
  return helperLaunchCommand({
    packaged: false,
    resourcesPath: '/',
    uid: typeof process.getuid === 'function' ? process.getuid() : 0,
    socketPath,
    stateDir,
    projectRoot: root,
    driver: 'embedded',
  });
}

export async function startWebServer(options: WebServerOptions): Promise<WebServer> {
  const { log } = options;
  const token = options.token ?? newToken();
  let bridge: Bridge | null = null;
  let api: BlksnapApi;
  if (options.api !== undefined) {
    api = options.api;
  } else {
    const socketPath = options.helperSocket ?? defaultSocketPath();
    const stateDir = options.stateDir ?? defaultStateDir();
    bridge = createBridge({
      socketPath,
      launch: options.launch === undefined ? defaultLaunch(socketPath, stateDir) : options.launch,
      logPath: join(stateDir, 'helper.log'),
      appVersion: projectVersion(findProjectRoot(import.meta.dirname)),
      labDir: join(stateDir, 'lab'),
      clientName: 'blksnap-manager-web',
    });
    api = bridge.api;
  }

  let port = 0;
  const csp = (): string => contentSecurityPolicy([`ws://127.0.0.1:${port}`, `ws://localhost:${port}`]);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<number> => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    res.setHeader('Content-Security-Policy', csp());
    if (!hostAllowed(req, port)) {
      res.writeHead(421, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Wrong Host: open http://127.0.0.1:PORT/ as printed.\n');
      return 421;
    }
    const url = pathOf(req);
    const credential = credentialOf(req, url, port, token);
    if (!credential.valid) {
      res
        .writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8' })
        .end('Unauthorized: open the URL blksnap-manager printed (it carries the access token).\n');
      return 401;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('Method not allowed.\n');
      return 405;
    }
    if (credential.kind === 'query') {
      // Trade the query token for the cookie, and hand it to the page in the fragment
      // (never sent to servers, never in Referer); the page removes it from the URL.
      url.searchParams.delete(TOKEN_PARAM);
      const rest = url.searchParams.toString();
      res.setHeader('Set-Cookie', sessionCookie(port, token));
      // one leading slash: "//host/..." would be a protocol-relative redirect off this server
      const path = `/${url.pathname.replace(/^\/+/, '')}`;
      res.writeHead(303, { Location: `${path}${rest === '' ? '' : `?${rest}`}#${TOKEN_PARAM}=${token}` }).end();
      return 303;
    }
    return sendStatic(options.staticDir, url.pathname, req.method === 'HEAD', res);
  };

  const server = createServer((req, res) => {
    const started = Date.now();
    handle(req, res).then(
      (status) => log(`${req.method ?? '?'} ${pathOf(req).pathname} ${status} ${Date.now() - started}ms`),
      (error: unknown) => {
        log(`${req.method ?? '?'} ${pathOf(req).pathname} failed: ${error instanceof Error ? error.message : String(error)}`);
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      },
    );
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node drops its own error handler from an upgraded socket: without one, a client
    // resetting the connection (e.g. while being refused) would crash the server
    socket.on('error', () => socket.destroy());
    const url = pathOf(req);
    const refuse = (status: number, reason: string): void => {
      log(`WS ${url.pathname} ${status}`);
      refuseUpgrade(socket, status, reason);
    };
    if (!hostAllowed(req, port)) return refuse(421, 'Misdirected Request');
    if (url.pathname !== WS_PATH) return refuse(404, 'Not Found');
    if (!originAllowed(req, port)) return refuse(403, 'Forbidden');
    if (!credentialOf(req, url, port, token).valid) return refuse(401, 'Unauthorized');
    wss.handleUpgrade(req, socket, head, (ws) => {
      log(`WS ${url.pathname} 101`);
      attachSession(ws, api, log);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  if (bridge !== null) void bridge.start();

  let closing: Promise<void> | null = null;
  return {
    url: `http://127.0.0.1:${port}/?${TOKEN_PARAM}=${token}`,
    token,
    port,
    bridge,
    close: () => {
      closing ??= (async () => {
        for (const client of wss.clients) client.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        bridge?.close();
      })();
      return closing;
    },
  };
}
