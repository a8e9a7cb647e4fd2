/** A LineTransport over a Unix stream socket (the CLI's connection to the helper). */
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { BlksnapError, isErrnoName } from '../abi/errno.js';
import { LineSplitter } from '../protocol/messages.js';
import type { LineTransport } from '../protocol/client.js';

export class SocketTransport implements LineTransport {
  private readonly lineHandlers: ((line: string) => void)[] = [];
  private readonly closeHandlers: ((error?: Error) => void)[] = [];
  private readonly splitter: LineSplitter;
  private lastError: Error | undefined;

  private constructor(private readonly socket: Socket) {
    this.splitter = new LineSplitter(
      (line) => {
        for (const h of this.lineHandlers) h(line);
      },
      () => {
        this.lastError = new Error('the helper sent an oversized message');
        socket.destroy();
      },
    );
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.splitter.push(chunk));
    socket.on('error', (err) => {
      this.lastError = err;
    });
    socket.on('close', () => {
      for (const h of this.closeHandlers) h(this.lastError);
    });
  }

  /** Connects; rejects with a BlksnapError (ENOENT, ECONNREFUSED -> ENOENT, EACCES) and a plain message. */
  static connect(path: string): Promise<SocketTransport> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      const onError = (err: NodeJS.ErrnoException): void => {
        socket.destroy();
        const hint = 'is the helper running? Start it with "blksnap-manager daemon" (or pkexec blksnap-manager-helper)';
        if (err.code === 'EACCES' || err.code === 'EPERM') {
          reject(new BlksnapError('EACCES', `permission denied connecting to the helper at ${path}`));
        } else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
          reject(new BlksnapError('ENOENT', `no helper listening at ${path}; ${hint}`));
        } else {
          const errno = isErrnoName(err.code) ? err.code : 'EIO';
          reject(new BlksnapError(errno, `cannot connect to the helper at ${path}: ${err.message}`));
        }
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve(new SocketTransport(socket));
      });
    });
  }

  write(line: string): void {
    this.socket.write(line + '\n');
  }

  onLine(cb: (line: string) => void): void {
    this.lineHandlers.push(cb);
  }

  onClose(cb: (error?: Error) => void): void {
    this.closeHandlers.push(cb);
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}
