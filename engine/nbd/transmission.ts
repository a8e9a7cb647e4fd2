/**
 * The transmission phase of one connection: requests are read one after the
 * other and run concurrently (up to maxInFlight); each reply goes out as one
 * uninterrupted frame (header and data written back to back), in
 * whatever order the device completes them; replies finished in the same
 * event-loop turn are batched into one writev.
 *
 * Hot-path economy: a READ of a device that can read into a given buffer
 * (BlockDevice.readTo) is read straight into its reply frame (header and data in
 * one buffer, one socket write, no copy); reply frames come from a
 * per-connection buffer pool and go back to it once the socket has sent them.
 */
import type { Socket } from 'node:net';
import type { BlockDevice } from '../core/block-device.js';
import {
  NBD_CMD_DISC,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOSPC,
  NBD_EPERM,
  NBD_ESHUTDOWN,
  NBD_REQUEST_MAGIC,
  NBD_REQUEST_SIZE,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_SIMPLE_REPLY_SIZE,
} from './constants.js';
import { BufferPool } from './buffer-pool.js';
import { nbdErrorFor } from './errors.js';
import { NbdProtocolError } from './negotiation.js';
import type { SocketReader } from './socket-reader.js';

export interface TransmissionOptions {
  /** Largest READ/WRITE payload accepted (bytes). */
  maxPayload: number;
  /** Requests running at once on this connection before the server stops reading. */
  maxInFlight: number;
  /** READ/WRITE bytes running at once on this connection before the server stops reading. */
  maxInFlightBytes: number;
  /** Reply bytes queued on the socket before the server stops reading. */
  maxQueuedReplyBytes: number;
  /** Alignment every offset and length must have (the export's minimum block size). */
  alignment: number;
  /** Bytes of free reply frames the connection keeps for reuse (default 32 MiB). */
  bufferPoolBytes?: number;
}

interface Request {
  flags: number;
  type: number;
  cookieHigh: number;
  cookieLow: number;
  offset: number;
  length: number;
  payload: Buffer | null;
}

const TWO_32 = 4294967296;
const EMPTY = Buffer.alloc(0);

export class Transmission {
  private inFlight = 0;
  private inFlightBytes = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private shuttingDown = false;
  private corked = false;
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };
  private readonly pool: BufferPool;

  constructor(
    private readonly socket: Socket,
    private readonly reader: SocketReader,
    private readonly device: BlockDevice,
    private readonly options: TransmissionOptions,
  ) {
    this.pool = new BufferPool(options.bufferPoolBytes ?? 32 * 1024 * 1024);
  }

  /** Requests currently being served. */
  get pending(): number {
    return this.inFlight;
  }

  /**
   * Serves requests until NBD_CMD_DISC (resolves after the outstanding replies
   * are sent and the socket ended), or until the connection closes or breaks
   * the protocol (rejects; the caller drops the connection).
   */
  async run(): Promise<void> {
    for (;;) {
      const header = this.reader.tryRead(NBD_REQUEST_SIZE) ?? (await this.reader.read(NBD_REQUEST_SIZE));
      if (header.readUInt32BE(0) !== NBD_REQUEST_MAGIC) throw new NbdProtocolError('bad request magic');
      const offsetHigh = header.readUInt32BE(16);
      const request: Request = {
        flags: header.readUInt16BE(4),
        type: header.readUInt16BE(6),
        cookieHigh: header.readUInt32BE(8),
        cookieLow: header.readUInt32BE(12),
        // Exact below 2^53; anything above is past every export's end anyway.
        offset: offsetHigh * TWO_32 + header.readUInt32BE(20),
        length: header.readUInt32BE(24),
        payload: null,
      };
      if (request.type === NBD_CMD_WRITE) {
        if (request.length > this.options.maxPayload) {
          throw new NbdProtocolError(`write payload of ${request.length} bytes exceeds ${this.options.maxPayload}`);
        }
        request.payload = this.reader.tryRead(request.length) ?? (await this.reader.read(request.length));
      }
      if (request.type === NBD_CMD_DISC) {
        await this.idle();
        this.socket.end();
        return;
      }
      const cost = request.type === NBD_CMD_READ || request.type === NBD_CMD_WRITE ? request.length : 0;
      if (!this.hasRoomFor(cost)) await this.roomForMore(cost);
      this.inFlight++;
      this.inFlightBytes += cost;
      void this.serve(request, cost);
    }
  }

  /** Resolves when no request is running. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Server shutdown: requests read from now on are answered ESHUTDOWN. */
  beginShutdown(): void {
    this.shuttingDown = true;
  }

  private hasRoomFor(cost: number): boolean {
    const o = this.options;
    if (this.inFlight >= o.maxInFlight) return false;
    // One request of any allowed size may always run alone.
    if (this.inFlight > 0 && this.inFlightBytes + cost > o.maxInFlightBytes) return false;
    return this.socket.writableLength <= o.maxQueuedReplyBytes;
  }

  private async roomForMore(cost: number): Promise<void> {
    while (!this.hasRoomFor(cost) && this.inFlight > 0) {
      await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
    }
    if (this.socket.writableLength > this.options.maxQueuedReplyBytes && !this.socket.destroyed) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.socket.off('drain', done);
          this.socket.off('close', done);
          resolve();
        };
        this.socket.on('drain', done);
        this.socket.on('close', done);
      });
    }
  }

  private async serve(request: Request, cost: number): Promise<void> {
    let error = 0;
    let data: Buffer = EMPTY;
    let frame: Buffer | null = null;
    const early = this.shuttingDown ? NBD_ESHUTDOWN : this.check(request);
    if (early !== 0) error = early;
    else if (request.type === NBD_CMD_READ && this.device.readTo !== undefined) {
      // Read straight into the reply frame, after room for the header.
      frame = this.pool.take(NBD_SIMPLE_REPLY_SIZE + request.length);
      try {
        await this.device.readTo(request.offset, request.length, frame, NBD_SIMPLE_REPLY_SIZE);
      } catch (err) {
        error = nbdErrorFor(err);
        this.pool.release(frame);
        frame = null;
      }
    } else {
      try {
        const result = await this.execute(request);
        if (result !== undefined) {
          if (result.length !== request.length) error = NBD_EIO;
          else data = result;
        }
      } catch (err) {
        error = nbdErrorFor(err);
      }
    }
    request.payload = null;
    if (frame !== null) this.replyFrame(request, frame);
    else this.reply(request, error, data);
    this.inFlight--;
    this.inFlightBytes -= cost;
    const waiter = this.slotWaiters.shift();
    if (waiter !== undefined) waiter();
    if (this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** The error value for a request that must not reach the device, or 0. */
  private check(request: Request): number {
    const { type, flags, offset, length } = request;
    const device = this.device;
    const writes = type === NBD_CMD_WRITE || type === NBD_CMD_TRIM || type === NBD_CMD_WRITE_ZEROES;
    if (type !== NBD_CMD_READ && !writes && type !== NBD_CMD_FLUSH) return NBD_EINVAL; // unknown command
    const allowedFlags = NBD_CMD_FLAG_FUA | (type === NBD_CMD_WRITE_ZEROES ? NBD_CMD_FLAG_NO_HOLE : 0);
    if ((flags & ~allowedFlags) !== 0) return NBD_EINVAL;
    if (writes && device.readOnly) return NBD_EPERM;
    if (type === NBD_CMD_FLUSH) return 0; // offset and length are reserved
    if (length === 0) return NBD_EINVAL;
    if (type === NBD_CMD_READ && length > this.options.maxPayload) return NBD_EINVAL;
    if (offset + length > device.capacity) {
      return type === NBD_CMD_WRITE || type === NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC : NBD_EINVAL;
    }
    const a = this.options.alignment;
    if (offset % a !== 0 || length % a !== 0) return NBD_EINVAL;
    return 0;
  }

  private async execute(request: Request): Promise<Buffer | undefined> {
    const { device } = this;
    const fua = (request.flags & NBD_CMD_FLAG_FUA) !== 0;
    switch (request.type) {
      case NBD_CMD_READ:
        return device.read(request.offset, request.length);
      case NBD_CMD_WRITE:
        await device.write(request.offset, request.payload ?? EMPTY, fua ? { fua: true } : undefined);
        return undefined;
      case NBD_CMD_FLUSH:
        await device.flush();
        return undefined;
      case NBD_CMD_TRIM:
        await device.discard(request.offset, request.length);
        if (fua) await device.flush();
        return undefined;
      case NBD_CMD_WRITE_ZEROES:
        // NO_HOLE asks for allocated zeroes: a plain zero write is exactly that.
        await device.writeZeroes(request.offset, request.length);
        if (fua) await device.flush();
        return undefined;
      default:
        throw new NbdProtocolError(`unexpected command ${request.type}`);
    }
  }

  private writeHeader(target: Buffer, request: Request, error: number): void {
    target.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
    target.writeUInt32BE(error, 4);
    target.writeUInt32BE(request.cookieHigh, 8);
    target.writeUInt32BE(request.cookieLow, 12);
  }

  /**
   * Replies finished in the same event-loop turn (e.g. all the device reads the
   * poll phase completed) leave in one writev at the check phase.
   */
  private corkForTurn(): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(this.uncork);
    }
  }

  /** A successful READ whose data is already in place after the header room. */
  private replyFrame(request: Request, frame: Buffer): void {
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) {
      this.pool.release(frame);
      return;
    }
    this.writeHeader(frame, request, 0);
    this.corkForTurn();
    // The frame goes back to the pool once the socket is done with it (sent or failed).
    socket.write(frame, () => this.pool.release(frame));
  }

  private reply(request: Request, error: number, data: Buffer): void {
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) return;
    const header = Buffer.allocUnsafe(NBD_SIMPLE_REPLY_SIZE);
    this.writeHeader(header, request, error);
    // A header and its data are written back to back: frames never interleave.
    this.corkForTurn();
    socket.write(header);
    if (data.length > 0) socket.write(data);
  }
}
