/**
 * Test support: a Unix-socket "helper" that answers every request line with the
 * text a test chooses (e.g. a line over the protocol's limit), to check how the
 * client side's transports and HelperClient take a helper that breaks the protocol.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface MisbehavingHelper {
  socketPath: string;
  close(): Promise<void>;
}

/** Listens on a fresh socket; each request line gets `answer(id)` written back as it is. */
export async function misbehavingHelper(answer: (id: unknown) => string): Promise<MisbehavingHelper> {
  const dir = mkdtempSync(join(tmpdir(), 'bm-bad-helper-'));
  const socketPath = join(dir, 'helper.sock');
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const request = JSON.parse(buffer.slice(0, nl)) as { id: unknown };
        buffer = buffer.slice(nl + 1);
        socket.write(answer(request.id));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A line over MAX_LINE_LENGTH, then a valid answer behind it in the same write. */
export function oversizedThenValid(limit: number): (id: unknown) => string {
  return (id) => `${JSON.stringify({ id, result: { pad: 'x'.repeat(limit) } })}\n${JSON.stringify({ id, result: { major: 1, minor: 0, revision: 0, build: 0 } })}\n`;
}
