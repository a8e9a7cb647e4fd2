/**
 * Test support: runs the helper as a child process (`node bin/blksnap-manager.mjs
 * daemon ...`, see test/helpers/cli.ts) in a temporary directory, and connects clients.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { HelperClient } from '../../../engine/protocol/client.js';
import { SocketTransport } from '../../../engine/cli/socket-transport.js';
import { CLI_BIN } from '../../helpers/cli.js';

export const REPO = resolve(import.meta.dirname, '../../..');

export interface SpawnedDaemon {
  dir: string;
  socketPath: string;
  stateDir: string;
  proc: ChildProcess;
  log(): string;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** stop() if still running, then remove the temporary directory. */
  cleanup(): Promise<void>;
}

export async function spawnDaemon(
  extraArgs: string[] = [],
  env: NodeJS.ProcessEnv = {},
  reuseDir?: string,
  stdin: 'ignore' | 'pipe' = 'ignore',
): Promise<SpawnedDaemon> {
  const dir = reuseDir ?? mkdtempSync(join(tmpdir(), 'bm-helper-'));
  const socketPath = join(dir, 'run', 'helper.sock');
  const stateDir = join(dir, 'state');
  const proc = spawn(
    process.execPath,
    [CLI_BIN, 'daemon', '--socket', socketPath, '--state-dir', stateDir, '--driver', 'embedded', ...extraArgs],
    { cwd: REPO, stdio: [stdin, 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  let output = '';
  proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  await new Promise<void>((res, rej) => {
    const started = Date.now();
    const poll = (): void => {
      if (output.includes('helper listening on')) res();
      else if (proc.exitCode !== null) rej(new Error(`helper exited: ${output}`));
      else if (Date.now() - started > 20_000) rej(new Error(`helper did not start: ${output}`));
      else setTimeout(poll, 50);
    };
    poll();
  });
  const stop = async (): Promise<number | null> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    return exited;
  };
  return {
    dir,
    socketPath,
    stateDir,
    proc,
    log: () => output,
    stop,
    cleanup: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function connectClient(socketPath: string): Promise<HelperClient> {
  const client = new HelperClient(await SocketTransport.connect(socketPath), { timeoutMs: 20_000 });
  await client.hello('test');
  return client;
}

/** A raw connection: send arbitrary text, read JSON lines back. */
export class RawConnection {
  private buffer = '';
  private readonly lines: string[] = [];
  private waiting: (() => void) | null = null;
  /** Resolves when the helper has closed the connection (or it failed). */
  readonly ended: Promise<void>;

  private constructor(readonly socket: Socket) {
    this.ended = new Promise((res) => socket.once('close', () => res()));
    socket.on('error', () => undefined);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        this.lines.push(this.buffer.slice(0, nl));
        this.buffer = this.buffer.slice(nl + 1);
      }
      this.waiting?.();
    });
  }

  static open(path: string): Promise<RawConnection> {
    return new Promise((res, rej) => {
      const s = connect(path);
      s.once('connect', () => res(new RawConnection(s)));
      s.once('error', rej);
    });
  }

  send(text: string): void {
    this.socket.write(text);
  }

  async next(timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (Date.now() > deadline) throw new Error('no message from the helper');
      await new Promise<void>((r) => {
        this.waiting = r;
        setTimeout(r, 50);
      });
    }
    return JSON.parse(this.lines.shift() as string) as Record<string, unknown>;
  }

  close(): void {
    this.socket.destroy();
  }
}
