/**
 * The app's connection to the helper: connect, or start a helper and wait for its
 * socket (connect-or-start), handshake (hello), subscribe to every notification
 * topic, and report the connection state. A helper that disappears turns the link
 * 'lost' (requests fail with HELPER_LOST) until reconnect().
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { HelperClient } from '../../engine/protocol/client.js';
import type { MethodResult } from '../../engine/protocol/methods.js';
import type { HelperState } from '../shared/types.js';
import { Emitter } from './emitter.js';
import { BridgeError, sentence } from './errors.js';
import type { LaunchCommand } from './launch.js';
import { ConnectError, UnixSocketTransport } from './socket-transport.js';

export type HelloResult = MethodResult<'hello'>;

export interface HelperLinkOptions {
  socketPath: string;
  /** How to start a helper when none answers; null: never start one. */
  launch: LaunchCommand | null;
  /** File the started helper's stdout/stderr are appended to (its tail explains a failed start). */
  logPath?: string | null;
  /** How long to wait for a started helper's socket (pkexec may ask for a password). */
  startTimeoutMs?: number;
  /** Per-call timeout of helper requests. */
  callTimeoutMs?: number;
  /** Name sent in hello. */
  clientName?: string;
}

const POLL_MS = 100;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function logTail(path: string | null | undefined, maxChars = 2000): string {
  if (!path) return '';
  try {
    const text = readFileSync(path, 'utf8');
    return text.slice(-maxChars).trim();
  } catch {
    return '';
  }
}

export class HelperLink {
  private client: HelperClient | null = null;
  private helloResult: HelloResult | null = null;
  private connecting: Promise<HelperClient> | null = null;
  private closed = false;
  private stateValue: HelperState = { state: 'starting' };
  /** The pid of the last helper this link started (it is detached and outlives the app). */
  startedPid: number | null = null;
  private readonly stateEmitter = new Emitter<HelperState>();
  private readonly clientEmitter = new Emitter<HelperClient>();

  constructor(private readonly options: HelperLinkOptions) {}

  get state(): HelperState {
    return this.stateValue;
  }

  get hello(): HelloResult | null {
    return this.client === null ? null : this.helloResult;
  }

  /** State changes (starting, connected, lost, stopped). */
  onState(callback: (state: HelperState) => void): () => void {
    return this.stateEmitter.on(callback);
  }

  /**
   * Every new connection, after hello and before subscribe (register notification
   * handlers here: a notification may arrive in the same read as subscribe's answer).
   */
  onClient(callback: (client: HelperClient) => void): () => void {
    return this.clientEmitter.on(callback);
  }

  /** Connects (starting a helper if none answers); concurrent callers share one attempt. */
  connect(): Promise<HelperClient> {
    if (this.client !== null && !this.client.closed) return Promise.resolve(this.client);
    this.connecting ??= this.establish().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  /** Waits for a connection in progress (at most maxWaitMs: a pkexec prompt may take minutes); never throws. */
  async settled(maxWaitMs = Number.POSITIVE_INFINITY): Promise<void> {
    if (this.connecting === null) return;
    const done = this.connecting.then(
      () => undefined,
      () => undefined,
    );
    if (!Number.isFinite(maxWaitMs)) return done;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, maxWaitMs)))]);
    clearTimeout(timer);
  }

  /** The connected client, waiting for a connection in progress; else HELPER_LOST / HELPER_UNAVAILABLE. */
  async current(): Promise<HelperClient> {
    if (this.client !== null && !this.client.closed) return this.client;
    if (this.connecting !== null) return this.connecting;
    if (this.closed) throw new BridgeError('HELPER_UNAVAILABLE', 'The app is shutting down.');
    const { state, message } = this.stateValue;
    if (state === 'lost') {
      throw new BridgeError('HELPER_LOST', 'The connection to the helper was lost. Reconnect to start it again.', message);
    }
    if (state === 'starting') return this.connect();
    throw new BridgeError('HELPER_UNAVAILABLE', message ?? 'The helper is not running.');
  }

  /** Drops the current connection (the helper keeps running) and connects again. */
  async reconnect(): Promise<HelperClient> {
    if (this.connecting !== null) await this.connecting.catch(() => undefined);
    const old = this.client;
    this.client = null;
    old?.close();
    this.closed = false;
    return this.connect();
  }

  /** Closes the connection for good (the helper keeps running for the next app start). */
  close(): void {
    this.closed = true;
    const old = this.client;
    this.client = null;
    old?.close();
    this.setState({ state: 'stopped', message: 'The app closed its connection to the helper.' });
  }

  private setState(state: HelperState): void {
    const same = state.state === this.stateValue.state && state.message === this.stateValue.message;
    this.stateValue = state;
    if (!same) this.stateEmitter.emit(state);
  }

  private async establish(): Promise<HelperClient> {
    this.setState({ state: 'starting' });
    try {
      let transport: UnixSocketTransport;
      try {
        transport = await UnixSocketTransport.connect(this.options.socketPath);
      } catch (error) {
        if (!(error instanceof ConnectError) || !error.absent || this.options.launch === null) throw error;
        transport = await this.startHelper(this.options.launch);
      }
      const client = new HelperClient(transport, { timeoutMs: this.options.callTimeoutMs ?? 30_000 });
      try {
        this.helloResult = await client.hello(this.options.clientName ?? 'blksnap-manager-app');
        this.clientEmitter.emit(client);
        await client.call('subscribe', {});
      } catch (error) {
        client.close();
        throw error;
      }
      if (this.closed) {
        client.close();
        throw new BridgeError('HELPER_UNAVAILABLE', 'The app is shutting down.');
      }
      this.client = client;
      client.onClose((error) => {
        if (this.client !== client) return;
        this.client = null;
        this.setState({ state: 'lost', message: sentence(`The helper stopped: ${error.message}`) });
      });
      this.setState({ state: 'connected' });
      return client;
    } catch (error) {
      const failure = error instanceof BridgeError ? error : this.unavailable(error);
      this.setState({ state: 'stopped', message: failure.error.message });
      throw failure;
    }
  }

  private unavailable(error: unknown): BridgeError {
    const text = error instanceof Error ? error.message : String(error);
    const code = (error as { code?: unknown }).code;
    if (code === 'EINVAL' || code === 'bad_response') {
      return new BridgeError('HELPER_UNAVAILABLE', 'The helper speaks another protocol version.', text);
    }
    return new BridgeError('HELPER_UNAVAILABLE', 'The helper is not running and could not be started.', text);
  }

  /** Starts a helper (detached: it outlives the app) and waits for its socket. */
  private async startHelper(launch: LaunchCommand): Promise<UnixSocketTransport> {
    const logPath = this.options.logPath ?? null;
    // The helper makes its own 0700 socket directory, but not the directories above it.
    try {
      mkdirSync(dirname(dirname(this.options.socketPath)), { recursive: true, mode: 0o700 });
    } catch {
      // the helper will say what is wrong
    }
    let logFd: number | null = null;
    if (logPath !== null) {
      mkdirSync(dirname(logPath), { recursive: true, mode: 0o700 });
      logFd = openSync(logPath, 'a', 0o600);
    }
    let exited: string | null = null;
    let spawnError: Error | null = null;
    try {
      const child = spawn(launch.command, launch.args, {
        detached: true,
        stdio: ['ignore', logFd ?? 'ignore', logFd ?? 'ignore'],
        env: { ...process.env, ...launch.env },
      });
      child.once('error', (error) => {
        spawnError = error;
      });
      child.once('exit', (code, signal) => {
        exited = signal !== null ? `was killed by ${signal}` : `exited with code ${code ?? '?'}`;
      });
      child.unref();
      this.startedPid = child.pid ?? null;
    } finally {
      if (logFd !== null) closeSync(logFd);
    }
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 60_000);
    let lastError: unknown;
    for (;;) {
      try {
        return await UnixSocketTransport.connect(this.options.socketPath);
      } catch (error) {
        lastError = error;
        if (!(error instanceof ConnectError) || !error.absent) throw error;
      }
      const failed: Error | null = spawnError;
      if (failed !== null) {
        throw new BridgeError('HELPER_UNAVAILABLE', `The helper could not be started (${launch.command}).`, (failed as Error).message);
      }
      if (exited !== null) {
        // Another app may have started one at the same moment: one last look.
        await delay(300);
        try {
          return await UnixSocketTransport.connect(this.options.socketPath);
        } catch {
          const tail = logTail(logPath);
          const lastLine = tail.split('\n').pop()?.trim() ?? '';
          const why = lastLine === '' ? '.' : `: ${lastLine.length > 300 ? `${lastLine.slice(0, 300)}…` : lastLine}`;
          throw new BridgeError('HELPER_UNAVAILABLE', sentence(`The helper ${exited} before it was ready${why}`), tail === '' ? undefined : tail);
        }
      }
      if (Date.now() > deadline) {
        const tail = logTail(logPath);
        throw new BridgeError(
          'HELPER_UNAVAILABLE',
          'The helper did not start in time.',
          [lastError instanceof Error ? lastError.message : '', tail].filter((s) => s !== '').join('\n'),
        );
      }
      await delay(POLL_MS);
    }
  }
}
