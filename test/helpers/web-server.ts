/**
 * Browser mode for end-to-end tests: a helper daemon (embedded engine, small module
 * parameters) started as its own process in a temporary directory, and the
 * browser-mode web server (app/web) on a random 127.0.0.1 port bridging to it.
 * close() stops both and removes the directory, whatever state they are in.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWebServer } from '../../app/web/server.js';
import type { WebServer } from '../../app/web/server.js';
import { CLI_BIN } from './cli.js';
import { PROJECT_ROOT } from './renderer-build.js';

export interface BrowserModeOptions {
  /** The built renderer to serve. */
  staticDir: string;
  /** Embedded engine module parameters (`--param NAME=VALUE`). */
  engineParams?: Record<string, number>;
  /** A parent for the temporary directory (default the OS tmpdir). */
  parentDir?: string;
}

export interface BrowserMode {
  /** The URL to open (with the token). */
  url: string;
  server: WebServer;
  /** The temporary directory holding everything (removed by close()). */
  dir: string;
  socketPath: string;
  /** Where the helper's NBD server listens (nbd+unix URIs name it). */
  nbdSocketPath: string;
  stateDir: string;
  /** A directory for difference-storage files. */
  storageDir: string;
  /** The daemon's stderr so far (for diagnostics). */
  daemonLog(): string;
  close(): Promise<void>;
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function stopChild(child: ChildProcess, timeoutMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = delay(timeoutMs).then(() => 'timeout' as const);
  if ((await Promise.race([exited.then(() => 'exited' as const), timer])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

export async function startBrowserMode(options: BrowserModeOptions): Promise<BrowserMode> {
  const dir = await mkdtemp(join(options.parentDir ?? tmpdir(), 'blksnap-e2e-'));
  const runDir = join(dir, 'run');
  const stateDir = join(dir, 'state');
  const storageDir = join(dir, 'storage');
  const socketPath = join(runDir, 'helper.sock');
  let log = '';
  let child: ChildProcess | null = null;
  let server: WebServer | null = null;

  const cleanup = async (): Promise<void> => {
    try {
      if (server !== null) await server.close();
    } finally {
      try {
        if (child !== null) await stopChild(child);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  };

  try {
    await mkdir(storageDir, { recursive: true });
    const params = Object.entries(options.engineParams ?? {}).flatMap(([name, value]) => ['--param', `${name}=${value}`]);
    // bin/blksnap-manager.mjs: dist/ when it is up to date, else the sources (test/helpers/cli.ts)
    child = spawn(
      process.execPath,
      [
        CLI_BIN,
        'daemon',
        '--socket',
        socketPath,
        '--state-dir',
        stateDir,
        '--driver',
        'embedded',
        ...params,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: PROJECT_ROOT },
    );
    const daemon = child;
    daemon.stdout?.setEncoding('utf8').on('data', (text: string) => (log += text));
    daemon.stderr?.setEncoding('utf8').on('data', (text: string) => (log += text));

    const deadline = Date.now() + 20_000;
    for (;;) {
      if (daemon.exitCode !== null) throw new Error(`the helper daemon exited with ${daemon.exitCode}:\n${log}`);
      if (existsSync(socketPath) && (await canConnect(socketPath))) break;
      if (Date.now() > deadline) throw new Error(`the helper daemon did not listen on ${socketPath} within 20 s:\n${log}`);
      await delay(50);
    }

    server = await startWebServer({
      staticDir: options.staticDir,
      helperSocket: socketPath,
      stateDir,
      launch: null,
      log: () => {},
    });
  } catch (error) {
    await cleanup();
    throw error;
  }

  const started = server;
  let closing: Promise<void> | null = null;
  return {
    url: started.url,
    server: started,
    dir,
    socketPath,
    nbdSocketPath: join(runDir, 'nbd.sock'),
    stateDir,
    storageDir,
    daemonLog: () => log,
    close: () => (closing ??= cleanup()),
  };
}
