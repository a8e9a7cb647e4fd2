/** The helper's Unix-socket server: many clients at once, broadcasts to subscribers. */
import { createServer } from 'node:net';
import type { Server } from 'node:net';
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
      if (!this.service || this.state.shuttingDown) {
        socket.destroy();
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
