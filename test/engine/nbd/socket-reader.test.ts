import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ConnectionClosedError, SocketReader } from '../../../engine/nbd/socket-reader.js';

/** Just what SocketReader uses of a socket: its events and pause/resume. */
function fakeSocket(): EventEmitter & Socket {
  let paused = false;
  return Object.assign(new EventEmitter(), {
    isPaused: () => paused,
    pause: () => (paused = true),
    resume: () => (paused = false),
  }) as unknown as EventEmitter & Socket;
}

const bytes = (from: number, n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (from + i) & 0xff));

describe('SocketReader parts (WRITE payloads without a joining copy)', () => {
  it('tryReadParts gives the received pieces in order, as views, and the next read starts after them', () => {
    const socket = fakeSocket();
    const reader = new SocketReader(socket);
    const a = bytes(0, 10);
    const b = bytes(10, 10);
    const c = bytes(20, 10);
    socket.emit('data', a);
    socket.emit('data', b);
    socket.emit('data', c);
    const parts = reader.tryReadParts(25)!;
    expect(parts.map((p) => p.length)).toEqual([10, 10, 5]);
    expect(Buffer.concat(parts).equals(bytes(0, 25))).toBe(true);
    expect(parts[0]!.buffer).toBe(a.buffer); // a view, not a copy
    expect(reader.tryRead(5)!.equals(bytes(25, 5))).toBe(true);
    expect(reader.available).toBe(0);
  });

  it('readParts waits for the bytes, then resolves with the pieces', async () => {
    const socket = fakeSocket();
    const reader = new SocketReader(socket);
    expect(reader.tryReadParts(8)).toBeNull();
    const pending = reader.readParts(8);
    socket.emit('data', bytes(0, 3));
    socket.emit('data', bytes(3, 7));
    const parts = await pending;
    expect(parts.map((p) => p.length)).toEqual([3, 5]);
    expect(Buffer.concat(parts).equals(bytes(0, 8))).toBe(true);
    expect((await reader.read(2)).equals(bytes(8, 2))).toBe(true);
  });

  it('readParts rejects with ConnectionClosedError when the peer leaves first', async () => {
    const socket = fakeSocket();
    const reader = new SocketReader(socket);
    const pending = reader.readParts(8);
    socket.emit('data', bytes(0, 3));
    socket.emit('end');
    await expect(pending).rejects.toThrow(ConnectionClosedError);
  });
});
