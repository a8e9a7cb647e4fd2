/** A connected pair of Unix sockets (listening at `dir`/`name`), for tests of system calls on a socket's descriptor. */
import { createConnection, createServer } from 'node:net';
import type { Socket } from 'node:net';
import { join } from 'node:path';

export interface SocketPair {
  /** The accepted (server) end's descriptor. */
  fd: number;
  server: Socket;
  client: Socket;
  close: () => void;
}

export async function socketPair(dir: string, name = 'pair.sock'): Promise<SocketPair> {
  const path = join(dir, name);
  const listener = createServer();
  const accepted = new Promise<Socket>((resolve) => listener.once('connection', resolve));
  await new Promise<void>((resolve) => listener.listen(path, resolve));
  const client = createConnection(path);
  // Connected on both ends: a write from the client goes straight to the kernel.
  const connected = new Promise<void>((resolve) => client.once('connect', () => resolve()));
  const server = await accepted;
  await connected;
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  return {
    fd,
    server,
    client,
    close: () => {
      client.destroy();
      server.destroy();
      listener.close();
    },
  };
}
