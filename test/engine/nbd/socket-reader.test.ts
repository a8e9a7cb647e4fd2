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

describe('SocketReader in place (front, skip, ready)', () => {
  it('front() and frontOffset show the next unread bytes where they lie; skip() moves past them; every other read goes on from there', () => {
    const socket = fakeSocket();
    const reader = new SocketReader(socket);
    const a = bytes(0, 10);
    socket.emit('data', a);
    socket.emit('data', bytes(10, 10));
    expect(reader.tryRead(3)!.equals(bytes(0, 3))).toBe(true);
    expect(reader.front()).toBe(a);
    expect(reader.frontOffset).toBe(3);
    reader.skip(4); // bytes 3-6, parsed in place
    expect(reader.frontOffset).toBe(7);
    expect(reader.available).toBe(13);
    expect(reader.unread().map((p) => [...p])).toEqual([[...bytes(7, 3)], [...bytes(10, 10)]]);
    // A read across the two buffers, then parts, then the rest.
    expect(reader.tryRead(5)!.equals(bytes(7, 5))).toBe(true);
    expect(reader.frontOffset).toBe(2);
    expect(Buffer.concat(reader.tryReadParts(4)!).equals(bytes(12, 4))).toBe(true);
    reader.skip(4);
    expect(reader.front()).toBeNull();
    expect(reader.available).toBe(0);
    expect(() => reader.skip(1)).toThrow();
  });

  it('skip() refuses to go past front()', () => {
    const socket = fakeSocket();
    const reader = new SocketReader(socket);
    socket.emit('data', bytes(0, 4));
    socket.emit('data', bytes(4, 4));
    expect(() => reader.skip(5)).toThrow();
    expect(reader.available).toBe(8);
  });

  it('ready(n) resolves once n bytes are here and takes none; front() is null while it waits', async () => {
    const socket = fakeSocket();
    const reader = new SocketReader(socket);
    const pending = reader.ready(6);
    socket.emit('data', bytes(0, 4));
    expect(reader.front()).toBeNull();
    socket.emit('data', bytes(4, 4));
    await pending;
    expect(reader.available).toBe(8);
    expect(reader.tryRead(8)!.equals(bytes(0, 8))).toBe(true);
    const closed = reader.ready(1);
    socket.emit('end');
    await expect(closed).rejects.toThrow(ConnectionClosedError);
  });
});
