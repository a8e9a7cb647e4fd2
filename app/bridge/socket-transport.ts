/**
 * A LineTransport (engine/protocol HelperClient) over the helper's Unix stream socket:
 * newline-delimited JSON, with the protocol's line-length limit.
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { LineSplitter } from '../../engine/protocol/messages.js';
import { ProtocolViolation } from '../../engine/protocol/client.js';
import type { LineTransport } from '../../engine/protocol/client.js';
import { MAX_LINE_LENGTH } from '../../engine/protocol/limits.js';

/** Why a connection attempt failed: nobody listens (start one), or something else (report it). */
export class ConnectError extends Error {
  /** true: no helper answers at the path (no socket, or a stale one). */
  readonly absent: boolean;
  readonly errnoCode: string;

  constructor(errnoCode: string, message: string) {
    super(message);
    this.name = 'ConnectError';
    this.errnoCode = errnoCode;
    this.absent = errnoCode === 'ENOENT' || errnoCode === 'ECONNREFUSED';
  }
}

export class UnixSocketTransport implements LineTransport {
  private readonly lineHandlers: ((line: string) => void)[] = [];
  private readonly closeHandlers: ((error?: Error) => void)[] = [];
  private lastError: Error | undefined;
  /** Set when the helper broke the framing: nothing more is delivered. */
  private broken = false;

  private constructor(private readonly socket: Socket) {
    const splitter = new LineSplitter(
      (line) => {
        if (!this.broken) for (const handler of this.lineHandlers) handler(line);
      },
      () => {
        this.broken = true;
        this.lastError = new ProtocolViolation(`the helper sent a line longer than ${MAX_LINE_LENGTH} characters`);
        socket.destroy();
      },
    );
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => splitter.push(chunk));
    socket.on('error', (error) => {
      this.lastError = error;
    });
    socket.on('close', () => {
      for (const handler of this.closeHandlers) handler(this.lastError);
    });
  }

  /** Connects to the socket at `path`; rejects with a ConnectError. */
  static connect(path: string, timeoutMs = 5000): Promise<UnixSocketTransport> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ConnectError('ETIMEDOUT', `the helper socket ${path} did not accept the connection within ${timeoutMs} ms`));
      }, timeoutMs);
      const onError = (error: NodeJS.ErrnoException): void => {
        clearTimeout(timer);
        socket.destroy();
        const code = error.code ?? 'EIO';
        reject(new ConnectError(code, `cannot connect to the helper at ${path}: ${error.message}`));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new UnixSocketTransport(socket));
      });
    });
  }

  write(line: string): void {
    if (this.socket.destroyed) throw new Error('the helper connection is closed');
    this.socket.write(`${line}\n`);
  }

  onLine(cb: (line: string) => void): void {
    this.lineHandlers.push(cb);
  }

  onClose(cb: (error?: Error) => void): void {
    this.closeHandlers.push(cb);
  }

  close(): void {
    this.socket.destroy();
  }
}
