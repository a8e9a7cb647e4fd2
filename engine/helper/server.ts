/**
 * The helper's Unix-socket server: up to MAX_CLIENTS clients at once, broadcasts to
 * subscribers. A client over the limit, or one arriving during shutdown, gets one
 * error line ({"id": null, "error": ...}) and is disconnected.
 */
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { MAX_CLIENTS } from '../protocol/limits.js';
import { encodeMessage, errorBody } from '../protocol/messages.js';
import type { ErrorBody } from '../protocol/messages.js';
import type { Topic } from '../protocol/schemas.js';
import { ClientConnection } from './connection.js';
import type { HelperService } from './service.js';

export class HelperServer {
  private readonly server: Server;
  private readonly connections = new Set<ClientConnection>();
  readonly state = { shuttingDown: false };
  private service: HelperService | null = null;

  constructor() {
    this.server = createServer((socket) => {
      if (!this.service) {
        socket.destroy();
        return;
      }
      if (this.state.shuttingDown) {
        refuse(socket, errorBody('shutting_down', 'the helper is shutting down'));
        return;
      }
      if (this.connections.size >= MAX_CLIENTS) {
        refuse(
          socket,
          errorBody(
            'errno',
            `the helper serves at most ${MAX_CLIENTS} clients at once and all are connected; close one (an app window, a browser-mode server or a blksnap-manager command) and try again`,
            'EAGAIN',
          ),
        );
        return;
      }
      const conn = new ClientConnection(socket, this.service, this.state, (c) => this.connections.delete(c));
      this.connections.add(conn);
    });
  }

  attach(service: HelperService): void {
    this.service = service;
  }

  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(path, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  broadcast(topic: Topic, params: unknown): void {
    for (const conn of this.connections) conn.notify(topic, params);
  }

  get clientCount(): number {
    return this.connections.size;
  }

  /** Stops accepting; waits (up to graceMs) for answers in flight, then closes every client. */
  async close(graceMs = 2000): Promise<void> {
    this.state.shuttingDown = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const deadline = Date.now() + graceMs;
    while ([...this.connections].some((c) => c.busy) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const conn of this.connections) conn.close();
    await closed;
  }
}

/** Tells a client why it is not served, then hangs up (without reading anything it sends). */
function refuse(socket: Socket, error: ErrorBody): void {
  socket.on('error', () => socket.destroy());
  socket.end(encodeMessage({ id: null, error }) + '\n');
  setTimeout(() => socket.destroy(), 1000).unref();
}
