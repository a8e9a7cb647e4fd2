/**
 * Large socket reads for an accepted connection. Node reads a socket in 64 KiB
 * pieces, each in a newly allocated and zero-filled buffer with its own 'data'
 * event: 16 of them for every 1 MiB WRITE. Profiled under nbdcopy, a third of
 * the server's time for sequential writes went there (the allocation's memset,
 * the event, the garbage). `net.Socket`'s `onread` option reads into a buffer
 * of the caller's instead, as much as the kernel has at once, but Node 20
 * offers it only for sockets it connects itself, not for accepted ones.
 *
 * So the accepted socket's handle is moved into a new `net.Socket` made with
 * `onread`. That uses two Node internals (the socket's `_handle` and the
 * constructor's `handle` option); every precondition is checked, and where one
 * does not hold the socket is used as it is (64 KiB pieces). Each read is
 * copied out of the shared buffer into a buffer of its own (no zero-fill) and
 * emitted as a 'data' event, so readers see an ordinary socket; pause() and
 * resume() stop and restart the handle's reading as for any socket.
 */
import { Socket } from 'node:net';
import type { SocketConstructorOpts } from 'node:net';

/** The internals this relies on (net.js: Socket#_handle, a stream handle with useUserBuffer). */
interface SocketInternals {
  _handle?: { useUserBuffer?: unknown; reading?: unknown } | null;
}

interface AdoptOptions extends SocketConstructorOpts {
  handle: object;
  onread: { buffer: Buffer; callback: (bytes: number, buffer: Buffer) => boolean };
}

/**
 * A socket on the same connection that reads up to `size` bytes at a time, or
 * `socket` itself where that cannot be done. `socket` must come from a server
 * with `pauseOnConnect` (nothing read yet); the socket returned reads at once.
 */
export function withReadBuffer(socket: Socket, size: number): Socket {
  const internals = socket as unknown as SocketInternals;
  const handle = internals._handle;
  if (handle === null || handle === undefined || typeof handle.useUserBuffer !== 'function' || handle.reading === true) {
    socket.resume();
    return socket;
  }
  const buffer = Buffer.allocUnsafeSlow(size);
  let adopted: Socket | null = null;
  const options: AdoptOptions = {
    handle,
    readable: true,
    writable: true,
    onread: {
      buffer,
      callback: (bytes, data) => {
        const copy = Buffer.allocUnsafe(bytes);
        data.copy(copy, 0, 0, bytes);
        adopted?.emit('data', copy);
        return true;
      },
    },
  };
  internals._handle = null;
  try {
    adopted = new Socket(options);
  } catch {
    internals._handle = handle;
    socket.resume();
    return socket;
  }
  // The old wrapper has no handle any more: destroying it only ends the
  // listener's count of it.
  socket.destroy();
  return adopted;
}
