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
 * does not hold the socket is used as it is (64 KiB pieces). Reads go into a
 * slab of `size` bytes, one after another, and each is emitted as a 'data'
 * event holding a view of the bytes read, with no copy, so readers see an
 * ordinary socket; pause() and resume() stop and restart the handle's reading
 * as for any socket. Once less than SLAB_ROOM_MIN is left, a new slab takes
 * the next reads; the old one is freed when no view of it is left. (Until
 * 2026-12-03 each read was copied out of one shared buffer into a buffer of its
 * own: for 4 KiB writes, that copy and allocation, and the new buffer's address
 * looked up for the write, were a tenth of the server's time.) A view pins its
 * whole slab, so what is kept past the request it came in with is copied first
 * (ownedParts(): the payload, smaller than the slab, of a WRITE that waits for
 * the thread pool).
 *
 * With `slabUse`, the slab is used as a ring: Node asks for the next read's
 * buffer right after the 'data' event of the last one, before anything has
 * consumed it; when nothing else read is held (SlabUse), the room before that
 * last read is read into again (all of the slab once everything has been
 * consumed). Small requests answered at once then never need a new slab. (Measured
 * on 2026-12-03: 4 KiB writes used up a 256 KiB slab every 60 requests, about
 * 160 MB of new slabs a run of 40,000; once sequential runs had grown the
 * heap's limits, V8 answered that external memory with a full collection every
 * few hundred requests, and the server's CPU per write rose by half.)
 *
 * With a `route`, a large WRITE payload still to come is read straight into a
 * buffer of its own instead (`onread.buffer` as a function: Node asks it for
 * the buffer of the next read after each read), limited to the payload's
 * bytes, and emitted without a copy. The shared buffer and its copy are left
 * for headers, small payloads and whatever follows. With a `pool`, those
 * buffers come from it (sizes rounded up to a power of two, so that they are
 * reused: a recently used buffer is mapped and warm, a fresh one costs page
 * faults and cache misses in the kernel's copy) and go back to it through
 * recycleReadTargets() once the payload has been written.
 *
 * With `receivers` too, the rest of a payload of at least WORKER_RECEIVE_MIN
 * still to come is received by a worker thread straight into such a buffer
 * (engine/nbd/socket-receivers.ts), while the handle's own reading stops; it
 * is then emitted like any read, and the handle reads on. Where no worker is
 * free the handle reads it as above.
 *
 * And where the route says where the payload belongs in a file
 * (ReadRoute.payloadWrite: the connection has checked the request, and the
 * device takes it as a plain write), the worker also writes it there once it
 * is all in (the head the slab read took is in the same buffer, moved there
 * first): the bytes go from the socket to the file on one thread, with no
 * trip through the thread pool. The worker reports the receive first (the
 * handle reads on at once) and the write after it (PayloadWrite.settle); the
 * connection answers the WRITE once it has both. Measured on 2026-12-03
 * (nbdcopy, 1 MiB writes): docs/nbd.md, "Writing on the receiving thread".
 *
 * Where the connection offers it (PayloadWrite.stream), that worker goes on
 * as a stream once it has written the payload and the connection says go: it
 * serves the plain WRITEs that follow itself, and the socket stays with it
 * (the handle neither reads nor closes) until it gives the socket back with
 * the bytes of the request it read and did not serve, which are then emitted
 * as if just read (handBack; docs/nbd.md, "Streams of WRITEs").
 */
import { Socket } from 'node:net';
import type { SocketConstructorOpts } from 'node:net';
import type { FileCopy } from '../core/block-device.js';
import { MAX_WRITE_COPIES } from './socket-receivers.js';
import type { SocketReceivers, ReceiveJob, Received, StreamAfter, StreamEnd, StreamFile, WriteAfter } from './socket-receivers.js';
import type { BufferPool } from './buffer-pool.js';

/** The internals this relies on (net.js: Socket#_handle, a stream handle with useUserBuffer). */
interface SocketInternals {
  _handle?: { useUserBuffer?: unknown; reading?: unknown } | null;
}

/** The stream handle's methods a receive on a worker holds back (libuv's pipe or TCP wrap). */
interface StreamHandle {
  fd?: unknown;
  reading?: unknown;
  readStart: () => number;
  readStop: () => number;
  close: (cb?: () => void) => void;
}

interface AdoptOptions extends SocketConstructorOpts {
  handle: object;
  onread: { buffer: () => Buffer; callback: (bytes: number, buffer: Buffer) => boolean };
}

/** Tells the socket where the bytes to come belong (write-payload-scanner.ts). */
export interface ReadRoute {
  /** Every byte received, in order, before it is emitted. */
  received(data: Buffer): void;
  /** Bytes still to come that belong together in a buffer of their own (a WRITE's payload), else 0. */
  payloadBytesLeft(): number;
  /** Bytes of that payload already received (0 when none is still to come). */
  payloadBytesReceived(): number;
  /**
   * Where the payload still to come may be written once it is all received,
   * by the thread receiving it, or null (the connection writes it as usual).
   * Asked only while all of the payload received so far is in one buffer of
   * its own with room for the rest.
   */
  payloadWrite?(): PayloadWrite | null;
}

/** A WRITE payload the socket's receiving thread writes to a file (ReadRoute.payloadWrite). */
export interface PayloadWrite {
  fd: number;
  position: number;
  /** In-kernel copies to make before the write (copy-on-write, FileWriteTarget.copies): if one fails, nothing is written. */
  copies: readonly FileCopy[];
  /** The payload's length: the bytes written, from the start of its buffer. */
  length: number;
  /** Set by the socket while a thread receives: asks it not to write if it has not begun (what arrives is then emitted as usual). */
  cancel: (() => void) | null;
  /**
   * Called once: -1 when it was not written (then before the payload's last
   * bytes are emitted, or at once when no thread takes it), else, once the
   * write is done, 0 or the errno of a failed write (that may come after the
   * payload's last bytes are emitted: the write follows the receive).
   * `answered`: the thread has sent the WRITE's reply (the stream went on);
   * `copyFailed`: not written (-1) because a copy failed.
   */
  settle(wrote: number, answered?: boolean, copyFailed?: boolean): void;
  /** Asks the receiving thread to go on as a stream after this write (socket-receivers.ts); null: not. */
  stream: PayloadStream | null;
}

/**
 * The connection's side of a stream (PayloadWrite.stream): the socket sets go
 * and stop once a thread takes it; the connection calls go() once nothing but
 * this WRITE runs and no reply is queued, and stop() at a freeze; ended() is
 * called when the thread gives the socket back, before the bytes it read and
 * did not serve are emitted.
 */
export interface PayloadStream {
  /** The WRITE's cookie (the thread answers it). */
  cookieHigh: number;
  cookieLow: number;
  /** WRITEs shorter than this, or not aligned to `alignment`, end the stream. */
  minLength: number;
  alignment: number;
  go: ((file: StreamFile | null) => boolean) | null;
  stop: ((writeDone: () => void) => void) | null;
  ended(end: StreamEnd): void;
}

/**
 * Says when the bytes read are no longer held (set by the connection once its
 * transmission runs; see withReadBuffer).
 */
export interface SlabUse {
  /**
   * True when nothing read is held any more except, at most, the last `bytes`
   * bytes received, still unread: no request runs (whose payload may be a view
   * of what was read) and no more than `bytes` are buffered unread.
   */
  unheldBeyond: (bytes: number) => boolean;
}

/** Payload remainders shorter than this go through the shared buffer (one read takes what follows too). */
export const DIRECT_READ_MIN = 64 * 1024;
/** Largest buffer of its own allocated for one read target (the rest of a larger payload gets another). */
export const DIRECT_READ_MAX = 2 * 1024 * 1024;
/** Payload remainders at least this large are received on a worker thread, where one is free (`receivers`). */
export const WORKER_RECEIVE_MIN = 256 * 1024;

/** How a stream ended that never began. */
const NO_STREAM: StreamEnd = { writes: 0, bytes: 0, header: Buffer.alloc(0), payload: 0, eof: false, errno: 0 };

/** A new slab is started when the current one has less room than this left (or than a quarter of a smaller slab). */
export const SLAB_ROOM_MIN = 64 * 1024;

/** The slabs of shared reads (views of them must not be kept past their request; ownedParts()). */
const slabs = new WeakSet<ArrayBufferLike>();

/**
 * The pieces of a WRITE payload, safe to keep while the write waits. A view of
 * a read slab pins all of the slab, so for a payload smaller than the slab its
 * views are copied into one buffer of their own (joined when all the pieces are
 * such views); a payload at least as large as the slab keeps them (what it pins
 * is then at most what it is charged, and the copy saved is the part that came
 * with the header, up to a quarter of a 1 MiB payload). Pieces of buffers the
 * payload was read into directly are kept as they are.
 */
export function ownedParts(parts: Buffer[]): Buffer[] {
  let all = 0;
  for (const part of parts) all += part.length;
  let copied = 0;
  for (const part of parts) if (fromReadSlab(part) && all < part.buffer.byteLength) copied += part.length;
  if (copied === 0) return parts;
  if (copied === all) return [Buffer.concat(parts, all)];
  return parts.map((part) => (fromReadSlab(part) && all < part.buffer.byteLength ? Buffer.from(part) : part));
}

/** True when `piece` is a view of a slab of shared reads (not a buffer a payload was read into directly). */
export function fromReadSlab(piece: Buffer): boolean {
  return slabs.has(piece.buffer);
}

/** The buffers (of a pool) that direct reads went into and that are not back in the pool yet. */
const pooledTargets = new WeakSet<ArrayBufferLike>();

/**
 * Gives the pooled buffers behind a WRITE payload's pieces back to `pool`, once
 * nothing reads them any more (the payload was written or dropped). Pieces of
 * other buffers are left alone. A buffer of its own holds the bytes of one
 * payload only, so nothing else still uses it.
 */
export function recycleReadTargets(parts: readonly Buffer[], pool: BufferPool): void {
  for (const part of parts) {
    const whole = part.buffer;
    if (!pooledTargets.has(whole)) continue;
    pooledTargets.delete(whole);
    pool.release(Buffer.from(whole, 0, whole.byteLength));
  }
}

function powerOfTwoAtLeast(n: number): number {
  let size = DIRECT_READ_MIN;
  while (size < n) size *= 2;
  return size;
}

/**
 * A socket on the same connection that reads up to `size` bytes at a time, or
 * `socket` itself where that cannot be done. `socket` must come from a server
 * with `pauseOnConnect` (nothing read yet); the socket returned reads at once.
 */
export function withReadBuffer(socket: Socket, size: number, route?: ReadRoute, pool?: BufferPool, receivers?: SocketReceivers, slabUse?: SlabUse): Socket {
  const internals = socket as unknown as SocketInternals;
  const handle = internals._handle;
  if (handle === null || handle === undefined || typeof handle.useUserBuffer !== 'function' || handle.reading === true) {
    socket.resume();
    return socket;
  }
  const newSlab = (): Buffer => {
    const buf = Buffer.allocUnsafeSlow(size);
    slabs.add(buf.buffer);
    return buf;
  };
  /** A buffer of its own for `want` bytes of a payload (from the pool, where there is one: recycleReadTargets() gives it back). */
  const payloadBuffer = (want: number): Buffer => {
    if (pool === undefined) return Buffer.allocUnsafeSlow(want);
    const whole = pool.take(powerOfTwoAtLeast(want));
    pooledTargets.add(whole.buffer);
    return whole.subarray(0, want);
  };
  let slab = newSlab();
  /** Where the next read into the slab goes, and the end of the room free for it. */
  let slabUsed = 0;
  let slabEnd = size;
  /** Bytes of the last 'data' emitted when it was a read into the slab (it ends at slabUsed), else 0. */
  let lastSlabBytes = 0;
  /** The slab's room handed out for the next read (compared by identity in the callback). */
  let slabRoom: Buffer | null = null;
  /** A payload's own buffer being filled, and how far. */
  let target: Buffer | null = null;
  let filled = 0;
  /** True when `target` holds its payload from the payload's first byte (so it may be written from there). */
  let targetFromStart = false;
  /** True while a worker receives (the read after it goes into the slab, whatever follows). */
  let onWorker = false;
  const next = (): Buffer => {
    if (onWorker) return nextSlabRoom();
    if (target !== null && filled < target.length) return target.subarray(filled);
    target = null;
    const left = route === undefined ? 0 : route.payloadBytesLeft();
    if (left < DIRECT_READ_MIN) return nextSlabRoom();
    target = payloadBuffer(Math.min(left, DIRECT_READ_MAX));
    filled = 0;
    targetFromStart = route!.payloadBytesReceived() === 0;
    return target;
  };
  /** A slab with less room than this left for the next read is left for a new one. */
  const roomMin = Math.min(SLAB_ROOM_MIN, size / 4);
  const nextSlabRoom = (): Buffer => {
    // Read into the slab again where nothing is held (warm in the cache, and
    // no new slab: V8 answers a churn of them with full collections).
    const tail = lastSlabBytes;
    lastSlabBytes = 0;
    const free = slabUsed !== 0 && slabUse !== undefined && slabUse.unheldBeyond(tail);
    if (free && tail === 0) {
      slabUsed = 0; // nothing held: all of it
      slabEnd = size;
    } else if (free && size - slabUsed >= roomMin) {
      slabEnd = size; // on after the last read
    } else if (free && slabUsed - tail >= roomMin) {
      slabEnd = slabUsed - tail; // before it
      slabUsed = 0;
    } else if (slabEnd - slabUsed < roomMin) {
      slab = newSlab();
      slabUsed = 0;
      slabEnd = size;
    }
    slabRoom = slab.subarray(slabUsed, slabEnd);
    return slabRoom;
  };
  /**
   * After a read into the slab that ends inside a large payload begun in it:
   * that payload's first bytes are copied into a buffer of its own, which the
   * rest then fills (the socket's reads or a worker's), and their place in the
   * slab is read into again. Without it, the header's read takes a slab's
   * worth of the payload (a client has 200 KiB or so in flight), and every
   * 1 MiB WRITE or two used up a new slab: external memory that V8 answered
   * with full garbage collections ("external memory pressure"), several per
   * 256 MiB once its young generation had grown. Returns the head in its new
   * place, or null when nothing was moved.
   */
  const moveHead = (chunk: Buffer): Buffer | null => {
    if (route === undefined) return null;
    const left = route.payloadBytesLeft();
    const head = route.payloadBytesReceived();
    if (left < DIRECT_READ_MIN || head === 0 || head > chunk.length || head >= DIRECT_READ_MAX) return null;
    const own = payloadBuffer(Math.min(head + left, DIRECT_READ_MAX));
    chunk.copy(own, 0, chunk.length - head);
    target = own;
    filled = head;
    targetFromStart = true;
    return own.subarray(0, head);
  };
  let adopted: Socket | null = null;
  const worker = receivers === undefined || route === undefined ? null : onWorkers(handle as unknown as StreamHandle, receivers);
  /** After a read: hands the rest of a large payload to a worker (the socket's own reading stops meanwhile). */
  const handOff = (): void => {
    if (worker === null || route === undefined) return;
    const left = route.payloadBytesLeft();
    if (left < WORKER_RECEIVE_MIN) return;
    // The rest of the payload's own buffer, made now where none is being filled.
    if (target === null || filled === target.length) {
      target = payloadBuffer(Math.min(left, DIRECT_READ_MAX));
      filled = 0;
      targetFromStart = route.payloadBytesReceived() === 0;
    }
    const own = target;
    const into = own.subarray(filled, filled + Math.min(left, own.length - filled));
    // The whole payload in this buffer once received: it may go to its file from here.
    const whole = targetFromStart && filled === route.payloadBytesReceived() && own.length - filled >= left;
    let write = whole ? (route.payloadWrite?.() ?? null) : null;
    if (write !== null && (write.length !== filled + left || write.copies.length > MAX_WRITE_COPIES)) {
      write.settle(-1); // not this payload (cannot happen), or more copies than a thread takes: written the usual way
      write = null;
    }
    // A stream after the write: its payloads go into a buffer of its own, of this one's size.
    const asked = write?.stream ?? null;
    const streamBuffer = asked !== null && write!.length <= DIRECT_READ_MAX ? payloadBuffer(write!.length) : null;
    const stream: StreamAfter | undefined =
      asked === null || streamBuffer === null
        ? undefined
        : {
            cookieHigh: asked.cookieHigh,
            cookieLow: asked.cookieLow,
            buffer: streamBuffer,
            minLength: Math.max(asked.minLength, WORKER_RECEIVE_MIN),
            alignment: asked.alignment,
            ended: (end) => handBack(end, streamBuffer, asked),
          };
    const started = worker.receive(into, (received) => {
      if (stream === undefined) onWorker = false;
      if (received.lost === true) {
        adopted?.destroy(new Error('the socket receiver thread failed'));
        return;
      }
      // Still `target`: nothing else reads or moves a payload's bytes meanwhile.
      filled += received.bytes;
      if (received.bytes > 0) {
        const chunk = into.subarray(0, received.bytes);
        route.received(chunk);
        adopted?.emit('data', chunk);
      }
    }, write === null ? undefined : { fd: write.fd, from: own.subarray(0, write.length), position: write.position, copies: write.copies, done: write.settle, ...(stream === undefined ? {} : { stream }) });
    // Declined: next() hands the socket the same room.
    if (started === null) {
      if (streamBuffer !== null) release(streamBuffer);
      write?.settle(-1);
      return;
    }
    if (write !== null) write.cancel = started.abort;
    if (asked !== null && stream !== undefined) {
      asked.go = started.go;
      asked.stop = started.stop;
    } else {
      if (streamBuffer !== null) release(streamBuffer);
      asked?.ended(NO_STREAM);
    }
    // Node asks next() for the buffer of the read after this one as soon as
    // this callback returns, and the handle reads into it once the worker is
    // done: the slab (next() while onWorker), not what is left of a payload's
    // buffer (the worker takes that part of the payload; a payload longer
    // than the worker's buffer goes on in a new buffer after it).
    onWorker = true;
  };
  /** A buffer of its own that no payload uses back to the pool. */
  const release = (buffer: Buffer): void => {
    if (pool !== undefined) recycleReadTargets([buffer], pool);
  };
  /**
   * A stream gave the socket back: the connection learns it first, then
   * (unless the socket is closing) reads the bytes of the request the thread
   * read and did not serve, as if just received: its header, and the part of
   * its payload that came, which stays in the stream's buffer (the rest is
   * read into it).
   */
  const handBack = (end: StreamEnd, buffer: Buffer, asked: PayloadStream): void => {
    const open = worker !== null && !worker.closed;
    onWorker = false;
    asked.ended(end);
    let kept = false;
    if (end.lost === true) adopted?.destroy(new Error('the socket receiver thread failed'));
    else if (open && route !== undefined && end.header.length > 0) {
      route.received(end.header);
      adopted?.emit('data', end.header);
      const left = route.payloadBytesLeft();
      if (left >= DIRECT_READ_MIN && left <= buffer.length) {
        target = buffer.subarray(0, left);
        filled = 0;
        targetFromStart = true;
        kept = true;
        if (end.payload > 0) {
          const chunk = target.subarray(0, end.payload);
          filled = end.payload;
          route.received(chunk);
          adopted?.emit('data', chunk);
        }
      }
    }
    if (!kept) release(buffer);
    if (open && end.lost !== true) handOff();
  };
  const options: AdoptOptions = {
    handle,
    readable: true,
    writable: true,
    onread: {
      buffer: next,
      callback: (bytes, data) => {
        if (data === slabRoom) {
          const chunk = slab.subarray(slabUsed, slabUsed + bytes);
          route?.received(chunk);
          const head = moveHead(chunk);
          const kept = bytes - (head?.length ?? 0);
          slabUsed += kept;
          // The last emitted is this read (unless its payload's head went on after it).
          lastSlabBytes = head === null ? kept : 0;
          if (kept > 0) adopted?.emit('data', head === null ? chunk : chunk.subarray(0, kept));
          if (head !== null) adopted?.emit('data', head);
        } else {
          // A view of the payload's own buffer (next() returned it): no copy.
          const chunk = data.subarray(0, bytes);
          filled += bytes;
          lastSlabBytes = 0;
          route?.received(chunk);
          adopted?.emit('data', chunk);
        }
        handOff();
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

/** A socket handle's receives on workers: start one, and hold back the handle's reading and closing meanwhile. */
interface WorkerReceive {
  /**
   * Starts receiving into `into` (null: no worker free); `done` runs before the
   * handle reads again, unless the handle was closed meanwhile (a `write`'s
   * done() is called in either case). With `write.stream`, the socket stays
   * with the worker until stream.ended(), which is called in either case too,
   * before the handle reads again.
   */
  receive(into: Buffer, done: (received: Received) => void, write?: WriteAfter): ReceiveJob | null;
  /** True once the handle is closed (or closing, after its worker's job). */
  readonly closed: boolean;
}

/**
 * Wraps the handle's readStart, readStop and close: while a worker receives,
 * the handle must not read (the bytes would be taken out of order) nor close
 * (the descriptor's number could be reused under the worker). Node's pause()
 * and resume() keep setting `handle.reading` as usual meanwhile; when the
 * receive ends, the handle reads again if `reading` still says so, and a close
 * asked for meanwhile (after an abort of the receive) happens then.
 */
function onWorkers(handle: StreamHandle, receivers: SocketReceivers): WorkerReceive | null {
  if (typeof handle.fd !== 'number' || handle.fd < 0) return null;
  const fd = handle.fd;
  const readStart = handle.readStart.bind(handle);
  const readStop = handle.readStop.bind(handle);
  const close = handle.close.bind(handle);
  let job: ReceiveJob | null = null;
  let closing: (() => void) | null = null;
  let closed = false;
  handle.readStart = () => (job === null ? readStart() : 0);
  handle.readStop = () => (job === null ? readStop() : 0);
  handle.close = (cb) => {
    closed = true;
    if (job === null) {
      close(cb);
      return;
    }
    job.abort();
    closing = () => close(cb);
  };
  /** The worker is done with the socket: a close asked for meanwhile happens now, else `then` runs and the handle reads again. */
  const over = (then: () => void): void => {
    job = null;
    if (closing !== null) {
      closing();
      return;
    }
    then();
    // `then` may have handed the socket to a worker again.
    if (closed || job !== null) return;
    if (handle.reading === true) readStart();
  };
  return {
    get closed() {
      return closed;
    },
    receive(into, done, write) {
      if (job !== null || closed || handle.reading !== true) return null;
      const stream = write?.stream;
      const streaming: WriteAfter | undefined =
        stream === undefined
          ? write
          : {
              ...write!,
              stream: {
                ...stream,
                ended: (end) => {
                  // The connection learns the end even when the socket closes meanwhile (its gate entry is left there).
                  if (closing !== null) stream.ended(end);
                  over(() => stream.ended(end));
                },
              },
            };
      const started = receivers.tryReceive(fd, into, (received) => {
        if (stream === undefined) over(() => done(received));
        else if (closing === null) done(received);
      }, streaming);
      if (started === null) return null;
      readStop();
      job = started;
      return started;
    },
  };
}
