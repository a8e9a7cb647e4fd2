/**
 * withReadBuffer: an accepted socket moved to reads into a buffer of its own
 * (engine/nbd/socket-read-buffer.ts) delivers the same bytes in larger pieces,
 * honours pause()/resume(), and still ends and writes like any socket.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { withReadBuffer } from '../../../engine/nbd/socket-read-buffer.js';

const KiB = 1024;
let dir: string;
let server: Server | null;
const sockets: Socket[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-read-buffer-'));
  server = null;
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await rm(dir, { recursive: true, force: true });
});

/** A server whose accepted sockets go through withReadBuffer; resolves with the first one and a connected client. */
async function pair(size: number): Promise<{ ours: Socket; client: Socket }> {
  const path = join(dir, 's.sock');
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer({ pauseOnConnect: true }, (s) => resolve(withReadBuffer(s, size)));
  });
  await new Promise<void>((resolve) => server?.listen(path, resolve));
  const client = createConnection(path);
  sockets.push(client);
  const ours = await accepted;
  sockets.push(ours);
  return { ours, client };
}

describe('withReadBuffer', () => {
  it('delivers every byte, in pieces larger than Node\'s 64 KiB reads, and answers through the same socket', async () => {
    const { ours, client } = await pair(256 * KiB);
    const sent = Buffer.alloc(4096 * KiB);
    for (let i = 0; i < sent.length; i += 4) sent.writeUInt32LE(i, i);
    const pieces: Buffer[] = [];
    let total = 0;
    const all = new Promise<void>((resolve) =>
      ours.on('data', (d: Buffer) => {
        pieces.push(d);
        total += d.length;
        if (total === sent.length) resolve();
      }),
    );
    client.write(sent);
    await all;
    expect(Buffer.concat(pieces).equals(sent)).toBe(true);
    expect(Math.max(...pieces.map((p) => p.length))).toBeGreaterThan(64 * KiB);
    expect(Math.max(...pieces.map((p) => p.length))).toBeLessThanOrEqual(256 * KiB);
    // Each piece is a buffer of its own: the shared read buffer is reused for the next read.
    expect(new Set(pieces.map((p) => p.buffer)).size).toBe(pieces.length);

    const answer = new Promise<Buffer>((resolve) => client.once('data', resolve));
    ours.write('pong');
    expect((await answer).toString()).toBe('pong');
  });

  it('stops delivering while paused and goes on after resume(); the peer\'s end is seen', async () => {
    const { ours, client } = await pair(64 * KiB);
    let got = 0;
    let paused = false;
    ours.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= 16 * KiB && !paused) {
        paused = true;
        ours.pause();
      }
    });
    const ended = new Promise<void>((resolve) => ours.once('end', resolve));
    client.write(Buffer.alloc(16 * KiB));
    while (got < 16 * KiB) await new Promise((r) => setTimeout(r, 5));
    client.end(Buffer.alloc(48 * KiB));
    await new Promise((r) => setTimeout(r, 100));
    expect(got).toBe(16 * KiB);
    ours.resume();
    await ended;
    expect(got).toBe(64 * KiB);
  });
});
