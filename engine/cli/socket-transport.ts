/** A LineTransport over a Unix stream socket (the CLI's connection to the helper). */
import { lstatSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { Socket } from 'node:net';
import { BlksnapError, isErrnoName } from '../abi/errno.js';
import { LineSplitter } from '../protocol/messages.js';
import { findHelperSockets } from './paths.js';
import { ProtocolViolation } from '../protocol/client.js';
import type { LineTransport } from '../protocol/client.js';
import { MAX_LINE_LENGTH } from '../protocol/limits.js';

function userName(uid: number): string {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && Number(f[2]) === uid && f[0]) return `${f[0]} (uid ${uid})`;
    }
  } catch {
    // no passwd file: the number alone
  }
  return `uid ${uid}`;
}

/** Who the helper serves (the owner of its private socket directory) and what to do. */
export function permissionMessage(path: string): string {
  const self = typeof process.getuid === 'function' ? process.getuid() : 0;
  let owner: number | null;
  try {
    owner = statSync(dirname(path)).uid;
  } catch {
    owner = null;
  }
  const who = owner === null ? 'another user' : userName(owner);
  return (
    `permission denied connecting to the helper at ${path}: that helper serves ${who}${owner === 0 ? '' : ' (and root)'} only, ` +
    `and this command runs as ${userName(self)}. Run the command as that user (or root), ` +
    'or start a helper of your own (pkexec blksnap-manager-helper, or blksnap-manager daemon with your own --socket)'
  );
}

/** Why nothing answers at `path`: no file, not a socket, or a socket a dead helper left. */
function notListening(path: string, start: string): string {
  try {
    const st = lstatSync(path);
    if (!st.isSocket()) return `no helper listening at ${path}: it is not a socket (wrong --socket?)`;
    return `no helper listening at ${path}: the socket was left by a helper that is no longer running; start one again with ${start} (the new helper replaces the socket)`;
  } catch {
    const others = findHelperSockets().filter((p) => p !== path);
    const elsewhere = others.length > 0 ? `; helper sockets found elsewhere: ${others.join(', ')} (choose one with --socket)` : '';
    return `no helper listening at ${path}; is the helper running? Start it with ${start}${elsewhere}`;
  }
}

export class SocketTransport implements LineTransport {
  private readonly lineHandlers: ((line: string) => void)[] = [];
  private readonly closeHandlers: ((error?: Error) => void)[] = [];
  private readonly splitter: LineSplitter;
  private lastError: Error | undefined;
  /** Set when the helper broke the framing: nothing more is delivered. */
  private broken = false;

  private constructor(private readonly socket: Socket) {
    this.splitter = new LineSplitter(
      (line) => {
        if (!this.broken) for (const h of this.lineHandlers) h(line);
      },
      () => {
        this.broken = true;
        this.lastError = new ProtocolViolation(`the helper sent a line longer than ${MAX_LINE_LENGTH} characters`);
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
        const start = '"blksnap-manager daemon --socket PATH --state-dir DIR" (or pkexec blksnap-manager-helper)';
        if (err.code === 'EACCES' || err.code === 'EPERM') {
          reject(new BlksnapError('EACCES', permissionMessage(path)));
        } else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
          reject(new BlksnapError('ENOENT', notListening(path, start)));
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
