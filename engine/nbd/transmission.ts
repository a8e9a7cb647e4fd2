/**
 * The transmission phase of one connection: requests are read one after the
 * other and run concurrently (up to maxInFlight); each reply goes out as one
 * uninterrupted frame (header and data written back to back), in
 * whatever order the device completes them; replies of the asynchronous path
 * finished in the same event-loop turn are batched into one writev, fast-path
 * replies are written at once.
 *
 * Hot-path economy: a READ of a device that can read into a given buffer
 * (BlockDevice.readTo) is read straight into its reply frame (header and data in
 * one buffer, one socket write, no copy); reply frames come from a
 * buffer pool and go back to it once the socket has sent them.
 *
 * Memory and fairness: a request holds its READ/WRITE bytes from the moment its
 * header is read until its reply has left the socket (so a client that does not
 * read its replies holds them). Small requests run on the connection's own
 * reserve; beyond it, bytes come from the server-wide budget, in turn. When the
 * client hangs up, nothing more is dequeued: requests not started are dropped,
 * requests waiting for bytes give up, and replies of running ones are discarded.
 */
import type { Socket } from 'node:net';
import type { BlockDevice } from '../core/block-device.js';
import {
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_CACHE,
  NBD_CMD_DISC,
  NBD_CMD_FLAG_FAST_ZERO,
  NBD_CMD_FLAG_REQ_ONE,
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
  NBD_ENOTSUP,
  NBD_EPERM,
  NBD_ESHUTDOWN,
  NBD_REQUEST_MAGIC,
  NBD_REQUEST_SIZE,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_ERROR_OFFSET,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REPLY_TYPE_OFFSET_HOLE,
  NBD_SIMPLE_REPLY_SIZE,
  NBD_STRUCTURED_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_SIZE,
} from './constants.js';
import type { BlockExtent } from '../core/block-device.js';
import { statusRuns, statusRunsNow } from './meta-context.js';
import type { MetaContext, StatusRun } from './meta-context.js';
import type { BufferPool } from './buffer-pool.js';
import type { ByteBudget } from './byte-budget.js';
import { nbdErrorFor, nbdErrorForErrno } from './errors.js';
import { NbdProtocolError } from './negotiation.js';
import { ConnectionClosedError } from './socket-reader.js';
import type { SocketReader } from './socket-reader.js';
import { ownedParts, recycleReadTargets } from './socket-read-buffer.js';
import type { PayloadStream, PayloadWrite } from './socket-read-buffer.js';
import type { WriteHeader } from './write-payload-scanner.js';
import { FileReplySender } from './file-reply.js';
import type { FileReplyCounts } from './file-reply.js';
import type { IdleSpin, SpinWaiter } from './idle-spin.js';
import type { FileWriteStream, FileWriteTarget, LiveFileRange } from '../core/block-device.js';
import { readFullSync } from '../core/file-io.js';

export interface TransmissionOptions {
  /** Largest READ/WRITE payload accepted (bytes). */
  maxPayload: number;
  /** Requests running at once on this connection before the server stops reading. */
  maxInFlight: number;
  /**
   * READ/WRITE bytes this connection may hold (requests running and replies not
   * yet sent) before the server stops reading; one request may always run alone.
   */
  maxInFlightBytes: number;
  /** Bytes of other replies (headers, errors) queued on the socket before the server stops reading. */
  maxQueuedReplyBytes: number;
  /**
   * READ bytes held (reads running and their replies not yet sent) at or past
   * which no further READ starts; two READs may always run.
   */
  readAheadBytes: number;
  /**
   * READs of at least this many bytes of a device's live file data (liveFileRange),
   * all cached, are sent by reference (file-reply.ts). Default: never (Infinity).
   */
  fileReplyMinBytes?: number;
  /** Counted into when a reply is sent by reference. */
  fileReplyCounts?: FileReplyCounts;
  /** Bytes the connection may hold without asking the server-wide budget. */
  reserveBytes: number;
  /** The server-wide budget of held bytes. */
  budget: ByteBudget;
  /** Free reply frames, shared by the server's connections. */
  pool: BufferPool;
  /** Alignment every offset and length must have (the export's minimum block size). */
  alignment: number;
  /** Structured replies were negotiated: READ and BLOCK_STATUS are answered in chunks. */
  structured?: boolean;
  /** The meta contexts BLOCK_STATUS answers (NBD_OPT_SET_META_CONTEXT). */
  contexts?: readonly MetaContext[];
  /** Told about every request refused before it reached the device. */
  onRefused?: (what: string, reason: string) => void;
  /** The server's spin before the event loop sleeps (idle-spin.ts), asked for while this connection waits for its client. */
  spinner?: IdleSpin;
}

interface Request {
  flags: number;
  type: number;
  cookieHigh: number;
  cookieLow: number;
  offset: number;
  length: number;
  /** A WRITE's data as it arrived from the socket (views of the received pieces, not joined). */
  payload: Buffer[] | null;
}

/** A data request on the asynchronous path, for ordering overlapping requests. */
interface Running {
  offset: number;
  end: number;
  /** WRITE, TRIM or WRITE_ZEROES. */
  write: boolean;
  /** Called once it has been answered (requests that wait for it). */
  waiters: (() => void)[];
  /** Resolves when the earlier requests it overlaps are answered; null: none. */
  after: Promise<void> | null;
}

/** Bytes a request holds, and where they came from. */
interface Charge {
  bytes: number;
  shared: boolean;
  /** A READ's bytes (counted against readAheadBytes too). */
  read: boolean;
}

/** A stream offered after a WRITE written ahead (Transmission.offerStream). */
interface StreamOffer extends PayloadStream {
  /** Where that WRITE ends: the device hands out copy-on-write from there. */
  next: number;
}

/** A WRITE whose payload the socket's receiving thread writes (Transmission.payloadWrite). */
interface WrittenAhead {
  header: WriteHeader;
  /** Null until the thread is done: -1 when it did not write, else 0 or the write's errno. */
  wrote: number | null;
  /** The thread answered it too (a stream went on after it). */
  answered: boolean;
  /** Called once `wrote` is known, when run() has read the request meanwhile. */
  then: (() => void) | null;
}

/** Why a request is refused before it reaches the device. */
interface Refusal {
  error: number;
  reason: string;
}

const TWO_32 = 4294967296;

/** Writes a safe integer as a big-endian 64-bit number (no BigInt on the hot path). */
function writeU64(target: Buffer, value: number, at: number): void {
  target.writeUInt32BE(Math.floor(value / TWO_32), at);
  target.writeUInt32BE(value >>> 0, at + 4);
}
/** A simple reply's header. */
function writeSimpleHeader(target: Buffer, cookieHigh: number, cookieLow: number, error: number): void {
  target.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  target.writeUInt32BE(error, 4);
  target.writeUInt32BE(cookieHigh, 8);
  target.writeUInt32BE(cookieLow, 12);
}
/** A structured reply chunk's header. */
function writeChunkHead(target: Buffer, cookieHigh: number, cookieLow: number, flags: number, type: number, length: number): void {
  target.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0);
  target.writeUInt16BE(flags, 4);
  target.writeUInt16BE(type, 6);
  target.writeUInt32BE(cookieHigh, 8);
  target.writeUInt32BE(cookieLow, 12);
  target.writeUInt32BE(length, 16);
}
/** The head of a READ's one OFFSET_DATA chunk (DONE), its data to follow at DATA_CHUNK_HEAD. */
function writeDataChunkHead(target: Buffer, cookieHigh: number, cookieLow: number, offset: number, length: number): void {
  writeChunkHead(target, cookieHigh, cookieLow, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, 8 + length);
  writeU64(target, offset, NBD_STRUCTURED_REPLY_SIZE);
}
const EMPTY = Buffer.alloc(0);
const NO_CHARGE: Charge = { bytes: 0, shared: false, read: false };
/** Requests dequeued in one go before the loop lets other connections run. */
const BATCH = 64;
/** Most status descriptors in one BLOCK_STATUS chunk; the client asks again for the rest. */
const MAX_STATUS_RUNS = 65536;
/**
 * Reads shorter than this are sent as data without asking for holes: the two
 * lseek calls cost more than the zeroes they would save (measured: 4 KiB reads
 * lost a quarter of their IOPS), and clients find holes with BLOCK_STATUS.
 */
const HOLE_READ_MINIMUM = 64 * 1024;
/**
 * Largest READ tried on the fast path (from the page cache, on the main thread):
 * above this the copy itself is long enough that a worker thread doing it in
 * parallel wins.
 */
const FAST_READ_MAX = 256 * 1024;
/** Largest WRITE tried in place (writeInPlace); the device decides what it takes at once (engine devices: up to 256 KiB). */
const FAST_WRITE_MAX = 256 * 1024;
/** A structured OFFSET_DATA frame: the chunk header and the 8-byte offset before the data. */
const DATA_CHUNK_HEAD = NBD_STRUCTURED_REPLY_SIZE + 8;
const COMMAND_NAMES: Readonly<Record<number, string>> = {
  [NBD_CMD_READ]: 'READ',
  [NBD_CMD_WRITE]: 'WRITE',
  [NBD_CMD_FLUSH]: 'FLUSH',
  [NBD_CMD_TRIM]: 'TRIM',
  [NBD_CMD_WRITE_ZEROES]: 'WRITE_ZEROES',
  [NBD_CMD_CACHE]: 'CACHE',
  [NBD_CMD_BLOCK_STATUS]: 'BLOCK_STATUS',
};

/** A read of one extent failed: the error chunk names where. */
class ExtentReadError extends Error {
  constructor(
    readonly offset: number,
    override readonly cause: unknown,
  ) {
    super('read failed');
  }
}

export class Transmission {
  private inFlight = 0;
  /** READ/WRITE bytes held (running requests and unsent replies). */
  private held = 0;
  private reserveUsed = 0;
  /** The part of `held` that READs hold, and how many READs hold it. */
  private readHeld = 0;
  private readsHeld = 0;
  /** Held bytes written to the socket and not yet sent. */
  private queuedHeld = 0;
  private wake: (() => void) | null = null;
  private pendingGrant: { cancel(): void } | null = null;
  private readonly idleWaiters: (() => void)[] = [];
  private shuttingDown = false;
  private hungUp = false;
  /** True while run() waits for the next request, every one before it answered or running (waitForClient). */
  private parked = false;
  /** A WRITE whose payload the socket's receiving thread writes into the device's file (payloadWrite()), until run() reads it: the next request it reads. */
  private writtenAhead: WrittenAhead | null = null;
  /**
   * The stream offered with the last WRITE written ahead (payloadWrite()), until
   * the thread gives the socket back; and, once it went on, the device's
   * write stream it holds.
   */
  private streamOffer: StreamOffer | null = null;
  private streamFile: FileWriteStream | null = null;
  private corked = false;
  /**
   * True while the fast path answers a request: its reply is written at once,
   * not corked until the end of the turn. The run loop answers every request
   * already received before it yields (up to BATCH), and a client kept waiting
   * for the lot sends its next requests later (measured: 4 KiB reads and writes,
   * depth 32, 10-25% faster this way; 1 MiB requests unchanged).
   */
  private answeringNow = false;
  /** The reply of writeInPlace(), reused: it is sent (or copied) before the next request is read. */
  private readonly inPlaceReply = Buffer.allocUnsafe(NBD_SIMPLE_REPLY_SIZE);
  /** What answerInPlace() checks on every request, read once (the device's and the options' never change): 0 for none. */
  private readonly writeInPlaceMax: number;
  private readonly readInPlaceMax: number;
  private readonly alignment: number;
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };
  private readonly pool: BufferPool;
  /** Data requests on the asynchronous path, not answered yet (see track()). */
  private readonly running = new Set<Running>();
  /** Sends large READs of live file data by reference; null: this socket cannot. */
  private readonly fileReply: FileReplySender | null;
  /** Writes fast-path replies straight to the socket's descriptor (sendNow); null: this socket cannot. */
  private readonly direct: FileReplySender | null;
  /** This connection's part in the server's idle spin (null: it does not spin). */
  private readonly spinWaiter: SpinWaiter | null;
  private readonly fileReplyMin: number;
  /**
   * Replies waiting behind a reply sent by reference that waits for room in the
   * socket (its header queued, its data to follow once the header has gone); null
   * when none waits. Everything written meanwhile waits here, in order.
   */
  private backlog: (() => void)[] | null = null;
  /** Bytes of replies in the backlog that hold no charge (counted like queued ones). */
  private backlogOther = 0;

  constructor(
    private readonly socket: Socket,
    private readonly reader: SocketReader,
    private readonly device: BlockDevice,
    private readonly options: TransmissionOptions,
  ) {
    this.pool = options.pool;
    this.fileReplyMin = options.fileReplyMinBytes ?? Infinity;
    const fileData = this.fileReplyMin !== Infinity && device.liveFileRange !== undefined;
    this.direct = FileReplySender.for(socket, fileData);
    this.spinWaiter = this.direct !== null && options.spinner?.enabled === true ? options.spinner.waiter(this.direct.fd) : null;
    this.fileReply = fileData ? this.direct : null;
    this.writeInPlaceMax = device.writeNow !== undefined && !device.readOnly ? Math.min(FAST_WRITE_MAX, options.maxPayload) : 0;
    // READs the fast path treats otherwise stay there: those sent by reference, and
    // structured ones long enough to ask for holes.
    this.readInPlaceMax =
      device.readToNow === undefined
        ? 0
        : Math.min(
            FAST_READ_MAX,
            options.maxPayload,
            this.fileReply === null ? Infinity : this.fileReplyMin - 1,
            options.structured === true && device.extents !== undefined ? HOLE_READ_MINIMUM - 1 : Infinity,
          );
    this.alignment = options.alignment;
    const onGone = (): void => this.onHangUp();
    socket.once('close', onGone);
    socket.once('end', onGone);
    socket.on('drain', () => this.notify());
  }

  /** Requests currently being served. */
  get pending(): number {
    return this.inFlight;
  }

  /** True once the client has hung up (nothing more is dequeued or answered). */
  get clientGone(): boolean {
    return this.hungUp;
  }

  /** READ/WRITE bytes this connection holds now. */
  get heldBytes(): number {
    return this.held;
  }

  /**
   * Serves requests until NBD_CMD_DISC (resolves after the outstanding replies
   * are sent and the socket ended), or until the connection closes or breaks
   * the protocol (rejects; the caller drops the connection).
   */
  async run(): Promise<void> {
    let sinceYield = 0;
    for (;;) {
      if (this.hungUp) throw new ConnectionClosedError();
      if (++sinceYield >= BATCH) {
        // A client with a long queue of requests answered at once (errors) must
        // not keep the event loop from the other connections.
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (this.hungUp) throw new ConnectionClosedError();
      }
      this.answeringNow = true;
      const inPlace = this.answerInPlace();
      this.answeringNow = false;
      if (inPlace) continue;
      const header = this.reader.tryRead(NBD_REQUEST_SIZE);
      if (header === null) {
        // Waits without taking the header, so that the request may still be answered in place.
        // (Waiting yields to the other connections too: the count starts again.)
        sinceYield = 0;
        await this.waitForClient();
        continue;
      }
      if (this.hungUp) throw new ConnectionClosedError();
      if (header.readUInt32BE(0) !== NBD_REQUEST_MAGIC) {
        throw new NbdProtocolError(`bad request magic 0x${header.readUInt32BE(0).toString(16)}`);
      }
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
      if (request.type === NBD_CMD_WRITE && request.length > this.options.maxPayload) {
        throw new NbdProtocolError(`write payload of ${request.length} bytes exceeds ${this.options.maxPayload}`);
      }
      if (request.type === NBD_CMD_DISC) {
        await this.idle();
        this.socket.end();
        return;
      }
      const refusal = this.check(request);
      // A READ that will be refused holds nothing; a WRITE's payload is read either way.
      const cost = request.type === NBD_CMD_WRITE || (request.type === NBD_CMD_READ && refusal === null) ? request.length : 0;
      const read = request.type === NBD_CMD_READ && cost > 0;
      const charge = this.tryAdmit(cost, read) ?? (await this.admit(cost, read));
      if (request.type === NBD_CMD_WRITE) {
        try {
          request.payload = this.reader.tryReadParts(request.length) ?? (await this.reader.readParts(request.length));
        } catch (err) {
          this.release(charge);
          throw err;
        }
      }
      if (this.writtenAhead !== null && this.answerWrittenAhead(request, charge)) continue;
      this.inFlight++;
      const servable = refusal === null && !this.shuttingDown && !this.hungUp;
      this.answeringNow = true;
      const answered = servable && this.serveNow(request, charge);
      this.answeringNow = false;
      if (answered) {
        this.finish();
        continue;
      }
      // A payload kept while its write waits must not pin the read slab it lies in.
      if (request.payload !== null) request.payload = ownedParts(request.payload);
      // Refusals (and ESHUTDOWN) are answered at once, waiting for nothing.
      const order = servable ? this.track(request) : null;
      if (order === null) void this.serve(request, refusal, charge);
      else void this.serveInOrder(request, charge, order);
    }
  }

  /**
   * The leanest path, for the commonest small requests: a plain READ or WRITE
   * (no flags) whose header, and a WRITE's payload, are in the reader's first
   * buffer, and which the device answers at once (readToNow, writeNow). Parsed
   * where it lies, a WRITE written from the received bytes, the reply sent
   * straight to the socket: no request object, no charge (nothing is held past
   * this call but a reply the socket did not take whole), no header buffer of
   * its own. Every check of the general path is made, with the same outcomes:
   * whatever does not pass one (another command, a flag, a refusal, a running
   * request it must not overtake, a reply that would have to queue, the device
   * declining) returns false with nothing read, and the request takes the
   * general path, which answers it the usual way.
   */
  private answerInPlace(): boolean {
    if (this.writtenAhead !== null) return false;
    const reader = this.reader;
    const buf = reader.front();
    if (buf === null) return false;
    const at = reader.frontOffset;
    const room = buf.length - at;
    if (room < NBD_REQUEST_SIZE) return false;
    const type = buf.readUInt16BE(at + 6);
    const write = type === NBD_CMD_WRITE;
    if ((!write && type !== NBD_CMD_READ) || buf.readUInt16BE(at + 4) !== 0 || buf.readUInt32BE(at) !== NBD_REQUEST_MAGIC) return false;
    const length = buf.readUInt32BE(at + 24);
    if (length === 0 || length > (write ? this.writeInPlaceMax : this.readInPlaceMax)) return false;
    if (write && room < NBD_REQUEST_SIZE + length) return false;
    const socket = this.socket;
    if (this.shuttingDown || this.hungUp || this.direct === null || this.backlog !== null || socket.writableLength !== 0 || socket.destroyed) return false;
    const offset = buf.readUInt32BE(at + 16) * TWO_32 + buf.readUInt32BE(at + 20);
    const a = this.alignment;
    if (offset + length > this.device.capacity || offset % a !== 0 || length % a !== 0) return false;
    if (this.running.size !== 0) {
      const end = offset + length;
      for (const r of this.running) if ((write || r.write) && offset < r.end && r.offset < end) return false;
    }
    return write ? this.writeInPlace(buf, at, offset, length) : this.readInPlace(buf, at, offset, length);
  }

  /**
   * Nothing this connection read is held any more but, at most, the last
   * `bytes` received, unread: no request runs (whose payload may be a view of
   * what was read) and no more than that is unread. (The socket's read buffer
   * then reads into the rest of its slab again: socket-read-buffer.ts, SlabUse.)
   */
  holdsOnlyUnread(bytes: number): boolean {
    return this.inFlight === 0 && this.reader.available <= bytes;
  }

  /**
   * For the socket (WritePayloadScanner.writer): a WRITE whose header and first
   * `received` payload bytes have just arrived, with nothing else unread, may be
   * written by the thread that receives the rest of it, straight into the
   * device's file, where this connection would serve it at once as a plain
   * write: run() waits for it with every request before it answered or
   * running, none of those overlaps it, it has no flags and passes check(), and
   * the device takes it (fileWriteTarget). run() then answers it with the
   * write's outcome once it reads it (answerWrittenAhead). Null otherwise: it is
   * written the usual way.
   */
  payloadWrite(header: WriteHeader, received: number): PayloadWrite | null {
    const device = this.device;
    if (device.fileWriteTarget === undefined || !this.parked || this.writtenAhead !== null) return null;
    if (this.hungUp || this.shuttingDown || header.flags !== 0 || header.length > this.options.maxPayload) return null;
    if (this.reader.available !== NBD_REQUEST_SIZE + received) return null;
    const request: Request = { ...header, type: NBD_CMD_WRITE, payload: null };
    if (this.check(request) !== null || this.overlapsRunning(request, true)) return null;
    const ahead: WrittenAhead = { header, wrote: null, answered: false, then: null };
    let target: FileWriteTarget | null = null;
    const write: PayloadWrite = {
      fd: -1,
      position: 0,
      length: header.length,
      copies: [],
      cancel: null,
      settle: (wrote, answered, copyFailed) => {
        if (ahead.wrote !== null) return;
        ahead.wrote = wrote;
        ahead.answered = answered === true && wrote === 0;
        // Not written: no stream follows it either.
        if (wrote === -1 && write.stream !== null && this.streamOffer === write.stream) this.streamOffer = null;
        target?.end(wrote !== -1, copyFailed);
        ahead.then?.();
      },
      stream: null,
    };
    try {
      target = device.fileWriteTarget(header.offset, header.length, () => write.cancel?.());
    } catch {
      target = null; // the usual path reports it
    }
    if (target === null) return null;
    write.fd = target.fd;
    write.position = target.position;
    write.copies = target.copies ?? [];
    if (target.streamable && device.fileWriteStream !== undefined && this.streamOffer === null) write.stream = this.offerStream(header);
    this.writtenAhead = ahead;
    return write;
  }

  /**
   * Asks the thread writing this WRITE to go on as a stream after it
   * (socket-receivers.ts): it then serves the plain WRITEs that follow itself,
   * once go() (maybeGo()) says nothing else of this connection runs.
   */
  private offerStream(header: WriteHeader): PayloadStream {
    const offer: StreamOffer = {
      next: header.offset + header.length,
      cookieHigh: header.cookieHigh,
      cookieLow: header.cookieLow,
      minLength: 0,
      alignment: this.options.alignment,
      go: null,
      stop: null,
      ended: () => {
        if (this.streamOffer === offer) this.streamOffer = null;
        const file = this.streamFile;
        this.streamFile = null;
        file?.end();
      },
    };
    this.streamOffer = offer;
    return offer;
  }

  /**
   * Lets an offered stream go on once its first WRITE is all that runs: run()
   * waits for the next request with nothing unread, no reply queued or held
   * back; from then on the thread is the only writer to the socket. The device
   * gives its write stream (the gate entered until the stream ends, giving way
   * to a freeze: stop() ends it before its next write) or none (no go).
   */
  private maybeGo(): void {
    const offer = this.streamOffer;
    if (offer === null || offer.go === null || this.streamFile !== null) return;
    if (!this.parked || this.inFlight !== 1 || this.running.size !== 1 || this.reader.available !== 0) return;
    const socket = this.socket;
    if (socket.writableLength !== 0 || socket.destroyed || this.corked || this.backlog !== null || this.hungUp || this.shuttingDown) return;
    const go = offer.go;
    offer.go = null;
    let file: FileWriteStream | null = null;
    try {
      // Copy-on-write (a snapshot taken) is handed out from the end of the first WRITE on.
      file = this.device.fileWriteStream!(() => offer.stop?.(() => file?.end()), offer.next);
    } catch {
      file = null;
    }
    if (file === null) {
      go(null);
      return;
    }
    const { fd, base, size, marks, cow } = file;
    if (go({ fd, base, size, marks, cow })) this.streamFile = file;
    else file.end();
  }

  /**
   * The request run() has just read (its payload received) while a payload was
   * written ahead (payloadWrite()): that WRITE, answered with the write's
   * outcome (true), at once or, while the thread still writes, once it is done
   * (meanwhile it runs like a request on the asynchronous path: later ones that
   * overlap it wait for it); or false when the thread did not write it (it goes
   * the usual way). Anything else is a broken invariant: the connection is
   * dropped.
   */
  private answerWrittenAhead(request: Request, charge: Charge): boolean {
    const ahead = this.writtenAhead!;
    this.writtenAhead = null;
    const h = ahead.header;
    if (request.type !== NBD_CMD_WRITE || request.offset !== h.offset || request.length !== h.length || request.cookieLow !== h.cookieLow || request.cookieHigh !== h.cookieHigh) {
      this.release(charge);
      throw new Error('a WRITE written ahead by the socket is not the request read next');
    }
    if (ahead.wrote === -1) return false;
    this.inFlight++;
    const answer = (): void => {
      // The payload's buffer goes back to the pool only now: the thread wrote from it.
      this.dropPayload(request);
      const wrote = ahead.wrote!;
      // A stream's thread sent the reply; -1 here (not written after all) cannot happen: answered as an I/O error.
      if (ahead.answered) this.release(charge);
      else this.reply(request, wrote === 0 ? 0 : wrote === -1 ? NBD_EIO : nbdErrorForErrno(wrote), EMPTY, charge);
      this.finish();
    };
    if (ahead.wrote !== null) {
      answer();
      return true;
    }
    const order = this.track(request)!;
    ahead.then = () => {
      this.untrack(order);
      answer();
    };
    return true;
  }

  /**
   * Waits for the next request's header (parked meanwhile), asking the server
   * to spin first (idle-spin.ts) where this connection may.
   */
  private async waitForClient(): Promise<void> {
    const w = this.spinWaiter;
    this.parked = true;
    this.maybeGo();
    if (w !== null) this.options.spinner!.willWait(w);
    try {
      await this.reader.ready(NBD_REQUEST_SIZE);
    } finally {
      this.parked = false;
      if (w !== null) this.options.spinner!.woke(w);
    }
  }

  /** answerInPlace() for a WRITE: the payload written from where it lies, answered from the connection's reply buffer. */
  private writeInPlace(buf: Buffer, at: number, offset: number, length: number): boolean {
    let error = 0;
    try {
      const start = at + NBD_REQUEST_SIZE;
      if (!this.device.writeNow!(offset, [buf.subarray(start, start + length)])) return false;
    } catch (err) {
      error = nbdErrorFor(err);
    }
    const reply = this.inPlaceReply;
    writeSimpleHeader(reply, buf.readUInt32BE(at + 8), buf.readUInt32BE(at + 12), error);
    this.reader.skip(NBD_REQUEST_SIZE + length);
    const counts = this.options.fileReplyCounts;
    if (counts !== undefined) counts.writesInPlace++;
    const sent = this.sendDirect(reply);
    // The rest through the stream, from a copy: the reply buffer is reused.
    if (sent < reply.length) this.writeOut(Buffer.from(reply.subarray(sent)));
    return true;
  }

  /** answerInPlace() for a READ: read into a pooled reply frame, written at once (the pool gets it back once sent). */
  private readInPlace(buf: Buffer, at: number, offset: number, length: number): boolean {
    const structured = this.options.structured === true;
    const head = structured ? DATA_CHUNK_HEAD : NBD_SIMPLE_REPLY_SIZE;
    const frame = this.pool.take(head + length);
    let done: boolean;
    try {
      done = this.device.readToNow!(offset, length, frame, head);
    } catch {
      done = false; // the general path reads it again and reports the error
    }
    if (!done) {
      this.pool.release(frame);
      return false;
    }
    const cookieHigh = buf.readUInt32BE(at + 8);
    const cookieLow = buf.readUInt32BE(at + 12);
    if (structured) writeDataChunkHead(frame, cookieHigh, cookieLow, offset, length);
    else writeSimpleHeader(frame, cookieHigh, cookieLow, 0);
    this.reader.skip(NBD_REQUEST_SIZE);
    const counts = this.options.fileReplyCounts;
    if (counts !== undefined) counts.readsInPlace++;
    this.writeOut(frame, () => this.pool.release(frame));
    return true;
  }

  /**
   * The fast path: a READ from the page cache or a WRITE the device takes at
   * once, answered synchronously, with no promise and no thread-pool trip.
   * False when the request must take the asynchronous path (nothing was done).
   * A request never overtakes a running one it overlaps (see track()).
   */
  private serveNow(request: Request, charge: Charge): boolean {
    const device = this.device;
    if (request.type === NBD_CMD_READ) {
      if (this.fileReply !== null && request.length >= this.fileReplyMin && this.replyFromFile(request, charge)) return true;
      if (device.readToNow === undefined || request.length > FAST_READ_MAX) return false;
      const structured = this.options.structured === true;
      if (this.overlapsRunning(request, false)) return false;
      // A structured READ that asks for holes: on this path only when the device
      // finds them at once and there are none (holes go the asynchronous way).
      if (structured && device.extents !== undefined && request.length >= HOLE_READ_MINIMUM && !this.allDataNow(request)) return false;
      const head = structured ? DATA_CHUNK_HEAD : NBD_SIMPLE_REPLY_SIZE;
      const frame = this.pool.take(head + request.length);
      let done: boolean;
      try {
        done = device.readToNow(request.offset, request.length, frame, head);
      } catch {
        done = false; // the asynchronous path reports the error
      }
      if (!done) {
        this.pool.release(frame);
        return false;
      }
      if (structured) {
        this.writeDataHead(frame, request);
        this.sendFrame(frame, charge);
      } else {
        this.replyFrame(request, frame, charge);
      }
      return true;
    }
    if (request.type === NBD_CMD_BLOCK_STATUS) {
      // Holes from the image file's lseek and change numbers from the live table:
      // answered at once, no promise (clients like qemu-img ask one run at a time).
      const chunks = this.blockStatusNow(request);
      if (chunks === null) return false;
      this.replyChunks(request, chunks, charge);
      return true;
    }
    if (request.type === NBD_CMD_WRITE) {
      if (device.writeNow === undefined || (request.flags & NBD_CMD_FLAG_FUA) !== 0) return false;
      if (this.overlapsRunning(request, true)) return false;
      let error = 0;
      try {
        if (!device.writeNow(request.offset, request.payload ?? [])) return false;
      } catch (err) {
        error = nbdErrorFor(err);
      }
      this.dropPayload(request);
      this.reply(request, error, EMPTY, charge);
      return true;
    }
    return false;
  }

  /**
   * A READ of live file data, all cached, answered from the page cache by
   * reference (file-reply.ts). False, with nothing done, when this path does not
   * apply now (the request then takes the other paths).
   */
  private replyFromFile(request: Request, charge: Charge): boolean {
    const socket = this.socket;
    if (this.hungUp || socket.destroyed || !socket.writable || this.overlapsRunning(request, false)) return false;
    const structured = this.options.structured === true;
    if (structured && this.device.extents !== undefined && !this.allDataNow(request)) return false;
    let range: LiveFileRange | null;
    try {
      range = this.device.liveFileRange!(request.offset, request.length);
    } catch {
      return false; // the asynchronous path reports the error
    }
    if (range === null || !this.fileReply!.cached(range.fd, range.position, request.length)) return false;
    const head = Buffer.allocUnsafe(structured ? DATA_CHUNK_HEAD : NBD_SIMPLE_REPLY_SIZE);
    if (structured) {
      this.writeDataHead(head, request);
    } else {
      this.writeHeader(head, request, 0);
    }
    if (this.backlog === null) this.sendFromFile(request, head, range, charge);
    else this.afterWaiting(0, () => this.sendFromFile(request, head, range, charge));
    return true;
  }

  /**
   * Sends a reply by reference, its turn come: the header and as much data as
   * the socket takes now; if the socket is full (or Node's stream still holds
   * bytes), the header is queued on the stream and everything after it waits in
   * the backlog until the header has gone, then the data follows. Data the
   * socket does not take is read and written the usual way, before the backlog
   * moves on.
   */
  private sendFromFile(request: Request, head: Buffer, range: LiveFileRange, charge: Charge): void {
    const socket = this.socket;
    if (this.hungUp || socket.destroyed || !socket.writable) {
      this.release(charge);
      return;
    }
    const sender = this.fileReply!;
    // Whatever this turn queued must be in the socket first: frames never interleave.
    if (this.corked) this.uncork();
    let headLeft = head;
    if (socket.writableLength === 0) {
      const sent = sender.send(head, range.fd, range.position, request.length);
      if (sent.head === head.length) {
        this.sentFromFile(request, range, sent.data, charge);
        return;
      }
      headLeft = head.subarray(sent.head);
    }
    // Wait for room: the header goes through the stream; its callback sends the data.
    this.backlog = [];
    this.inFlight++;
    socket.write(headLeft, (err) => {
      const done = (): void => {
        this.finish();
        this.resume();
      };
      if ((err !== undefined && err !== null) || this.hungUp || socket.destroyed) {
        this.release(charge);
        done();
        return;
      }
      // Asked again, now: the device may have closed meanwhile (and its
      // descriptor's number been reused), or the pages been evicted.
      let now: LiveFileRange | null;
      try {
        now = this.device.liveFileRange!(request.offset, request.length);
      } catch {
        now = null;
      }
      if (now !== null && sender.cached(now.fd, now.position, request.length)) {
        this.sentFromFile(request, now, sender.sendData(now.fd, now.position, request.length), charge);
        done();
      } else {
        void this.copyAfterHead(request, charge).then(done);
      }
    });
  }

  /**
   * The data of a reply whose header is on the wire, read the usual way
   * (through the thread pool: not cached any more), written ahead of the
   * backlog. A failure can only be answered by hanging up.
   */
  private async copyAfterHead(request: Request, charge: Charge): Promise<void> {
    const frame = this.pool.take(request.length);
    let read = true;
    try {
      await this.readInto(request.offset, request.length, frame, 0);
    } catch {
      read = false;
    }
    this.writeRest(frame, charge, read);
  }

  /**
   * Writes the rest of a reply whose header is on the wire; when that rest
   * could not be read, hangs up instead: the protocol has no other way to
   * report an error once the header has gone.
   */
  private writeRest(frame: Buffer, charge: Charge, read: boolean): void {
    if (read) {
      this.writeFrame(frame, charge);
      return;
    }
    this.pool.release(frame);
    this.release(charge);
    this.socket.destroy();
  }

  /**
   * The header of a reply by reference and `sent` bytes of its data are in the
   * socket: counts it, and writes the rest of the data (read synchronously: it
   * was cached a moment ago) straight to the stream, ahead of the backlog.
   */
  private sentFromFile(request: Request, range: LiveFileRange, sent: number, charge: Charge): void {
    const counts = this.options.fileReplyCounts;
    if (counts !== undefined && sent > 0) {
      counts.replies++;
      counts.bytes += sent;
      if (sent < request.length) counts.partial++;
    }
    if (sent === request.length) {
      this.release(charge);
      return;
    }
    const left = request.length - sent;
    const frame = this.pool.take(left);
    let read = true;
    try {
      readFullSync(range.fd, frame, 0, left, range.position + sent);
    } catch {
      read = false;
    }
    this.writeRest(frame, charge, read);
  }

  /**
   * Queues a reply's writing behind the reply by reference that waits for room
   * (the callers write at once when none waits; `otherBytes`: the reply's bytes
   * that hold no charge, counted as queued meanwhile).
   */
  private afterWaiting(otherBytes: number, write: () => void): void {
    const backlog = this.backlog!;
    this.backlogOther += otherBytes;
    backlog.push(otherBytes === 0 ? write : () => {
      this.backlogOther -= otherBytes;
      write();
    });
  }

  /** The reply by reference that waited has gone: writes the backlog, until another one waits. */
  private resume(): void {
    const waiting = this.backlog ?? [];
    this.backlog = null;
    let i = 0;
    while (i < waiting.length) {
      waiting[i++]!();
      if (this.backlog !== null) {
        // Another reply waits for room: the rest stays behind it, still in order.
        this.backlog = waiting.slice(i);
        this.notify();
        return;
      }
    }
    this.notify();
  }

  /** True when the device tells at once that the request's range has no hole. */
  private allDataNow(request: Request): boolean {
    if (this.device.extentsNow === undefined) return false;
    let extents: BlockExtent[];
    try {
      extents = this.device.extentsNow(request.offset, request.length, 2);
    } catch {
      return false; // the asynchronous path reports the error
    }
    return extents.length === 1 && !extents[0]!.hole && extents[0]!.length === request.length;
  }

  /** True when [offset, offset+length) overlaps a running request it must not overtake. */
  private overlapsRunning(request: Request, write: boolean): boolean {
    if (this.running.size === 0) return false;
    const end = request.offset + request.length;
    for (const r of this.running) {
      if ((write || r.write) && request.offset < r.end && r.offset < end) return true;
    }
    return false;
  }

  /**
   * Registers a data request taking the asynchronous path, so that later
   * requests overlapping it wait for it (and it for the earlier ones it
   * overlaps): on one connection, a write and another request on the same bytes
   * run in the order they arrived. Reads may overlap reads. Null for requests
   * that touch no data.
   */
  private track(request: Request): Running | null {
    const type = request.type;
    const write = type === NBD_CMD_WRITE || type === NBD_CMD_TRIM || type === NBD_CMD_WRITE_ZEROES;
    if (!write && type !== NBD_CMD_READ) return null;
    const entry: Running = { offset: request.offset, end: request.offset + request.length, write, waiters: [], after: null };
    let pending = 0;
    let release: (() => void) | null = null;
    const one = (): void => {
      if (--pending === 0) release?.();
    };
    for (const r of this.running) {
      if ((write || r.write) && entry.offset < r.end && r.offset < entry.end) {
        pending++;
        r.waiters.push(one);
      }
    }
    if (pending > 0) entry.after = new Promise<void>((resolve) => (release = resolve));
    this.running.add(entry);
    return entry;
  }

  private async serveInOrder(request: Request, charge: Charge, order: Running): Promise<void> {
    try {
      if (order.after !== null) await order.after;
      await this.serve(request, null, charge);
    } finally {
      this.untrack(order);
    }
  }

  /** A tracked request is done: the later ones that waited for it may run. */
  private untrack(order: Running): void {
    this.running.delete(order);
    for (const wake of order.waiters) wake();
  }

  /** Resolves when no request is running. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Server shutdown: requests read from now on are answered ESHUTDOWN. */
  beginShutdown(): void {
    this.shuttingDown = true;
    // A stream ends before its next write: what follows is answered ESHUTDOWN.
    const file = this.streamFile;
    if (file !== null) this.streamOffer?.stop?.(() => file.end());
  }

  private onHangUp(): void {
    if (this.hungUp) return;
    this.hungUp = true;
    this.pendingGrant?.cancel();
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => (this.wake = resolve));
  }

  /** Other replies (not held bytes) queued on the socket. */
  private get queuedOther(): number {
    return Math.max(0, this.socket.writableLength - this.queuedHeld) + this.backlogOther;
  }

  private hasRoomFor(cost: number, read: boolean): boolean {
    const o = this.options;
    return (
      this.inFlight < o.maxInFlight &&
      (this.held === 0 || this.held + cost <= o.maxInFlightBytes) &&
      (!read || this.readsHeld < 2 || this.readHeld < o.readAheadBytes) &&
      this.queuedOther <= o.maxQueuedReplyBytes
    );
  }

  /** The charge for a request that may start at once on this connection's reserve, else null. */
  private tryAdmit(cost: number, read: boolean): Charge | null {
    if (this.hungUp || !this.hasRoomFor(cost, read)) return null;
    if (cost === 0) return NO_CHARGE;
    if (this.reserveUsed + cost > this.options.reserveBytes) return null;
    this.reserveUsed += cost;
    this.held += cost;
    this.holdRead(read, cost);
    return { bytes: cost, shared: false, read };
  }

  /**
   * Waits until this connection may start one more request of `cost` bytes,
   * and takes them (from the connection's reserve, else from the server budget).
   */
  private async admit(cost: number, read: boolean): Promise<Charge> {
    const o = this.options;
    for (;;) {
      if (this.hungUp) throw new ConnectionClosedError();
      if (this.hasRoomFor(cost, read)) break;
      await this.changed();
    }
    const own = this.tryAdmit(cost, read);
    if (own !== null) return own;
    const grant = o.budget.acquire(cost);
    this.pendingGrant = grant;
    const granted = await grant.granted;
    this.pendingGrant = null;
    if (granted && grant.waited) {
      // Bytes given back by a client that hung up often go to another one whose
      // hang-up is already queued: let the event loop deliver it before reading.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (!granted || this.hungUp) {
      if (granted) o.budget.release(cost);
      throw new ConnectionClosedError();
    }
    this.held += cost;
    this.holdRead(read, cost);
    return { bytes: cost, shared: true, read };
  }

  private holdRead(read: boolean, cost: number): void {
    if (!read) return;
    this.readHeld += cost;
    this.readsHeld++;
  }

  private release(charge: Charge): void {
    if (charge.bytes === 0) return;
    this.held -= charge.bytes;
    if (charge.read) {
      this.readHeld -= charge.bytes;
      this.readsHeld--;
    }
    if (charge.shared) this.options.budget.release(charge.bytes);
    else this.reserveUsed -= charge.bytes;
    this.notify();
  }

  private finish(): void {
    this.inFlight--;
    if (this.streamOffer !== null) this.maybeGo();
    this.notify();
    if (this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async serve(request: Request, checked: Refusal | null, charge: Charge): Promise<void> {
    if (this.hungUp) {
      // Nobody to answer: the request is dropped before it reaches the device.
      this.dropPayload(request);
      this.release(charge);
      this.finish();
      return;
    }
    let error = 0;
    let data: Buffer = EMPTY;
    let frame: Buffer | null = null;
    const refusal = this.shuttingDown ? { error: NBD_ESHUTDOWN, reason: '' } : checked;
    const chunked = this.options.structured === true && (request.type === NBD_CMD_READ || request.type === NBD_CMD_BLOCK_STATUS);
    if (refusal !== null) {
      error = refusal.error;
      if (refusal.reason !== '') this.options.onRefused?.(this.describe(request), refusal.reason);
    } else if (
      chunked &&
      request.type === NBD_CMD_READ &&
      this.device.readTo !== undefined &&
      (this.device.extents === undefined || request.length < HOLE_READ_MINIMUM)
    ) {
      // No hole lookup: one OFFSET_DATA chunk read straight into its frame (one await, as for simple replies).
      const dataFrame = this.pool.take(DATA_CHUNK_HEAD + request.length);
      try {
        await this.device.readTo(request.offset, request.length, dataFrame, DATA_CHUNK_HEAD);
      } catch (err) {
        this.pool.release(dataFrame);
        this.replyChunks(request, [this.errorChunk(request, nbdErrorFor(err), '', request.offset)], charge);
        this.finish();
        return;
      }
      this.writeDataHead(dataFrame, request);
      this.sendFrame(dataFrame, charge);
      this.finish();
      return;
    } else if (chunked) {
      request.payload = null;
      await this.serveChunked(request, charge);
      this.finish();
      return;
    } else if (request.type === NBD_CMD_CACHE) {
      // Nothing to prefetch into: the range was checked, the page cache does the rest.
    } else if (request.type === NBD_CMD_READ && this.device.readTo !== undefined) {
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
    this.dropPayload(request);
    if (frame !== null) this.replyFrame(request, frame, charge);
    else if (chunked) this.replyChunks(request, [this.errorChunk(request, error, refusal?.reason ?? '', null)], charge);
    else this.reply(request, error, data, charge);
    this.finish();
  }

  /** READ and BLOCK_STATUS with structured replies; any failure becomes an error chunk. */
  private async serveChunked(request: Request, charge: Charge): Promise<void> {
    const chunks: Buffer[] = [];
    try {
      if (request.type === NBD_CMD_BLOCK_STATUS) await this.blockStatus(request, chunks);
      else if (await this.readChunks(request, chunks, charge)) return;
    } catch (err) {
      chunks.length = 0;
      const failedAt = err instanceof ExtentReadError ? err.offset : null;
      chunks.push(this.errorChunk(request, nbdErrorFor(err instanceof ExtentReadError ? err.cause : err), '', failedAt));
    }
    this.replyChunks(request, chunks, charge);
  }

  /**
   * A structured READ: one OFFSET_DATA chunk read straight into its frame when the
   * range has no hole (returns true: already answered), else OFFSET_DATA and
   * OFFSET_HOLE chunks in offset order, pushed to `chunks`.
   */
  private async readChunks(request: Request, chunks: Buffer[], charge: Charge): Promise<boolean> {
    const device = this.device;
    let extents: BlockExtent[] = [{ offset: request.offset, length: request.length, hole: false }];
    if (device.extents !== undefined && request.length >= HOLE_READ_MINIMUM) {
      extents = (await device.extents(request.offset, request.length)).filter((e) => e.length > 0);
    }
    if (extents.length === 1 && !extents[0]!.hole) {
      const frame = this.pool.take(DATA_CHUNK_HEAD + request.length);
      try {
        await this.readInto(request.offset, request.length, frame, DATA_CHUNK_HEAD);
      } catch (err) {
        this.pool.release(frame);
        throw new ExtentReadError(request.offset, err);
      }
      this.writeDataHead(frame, request);
      this.sendFrame(frame, charge);
      return true;
    }
    for (const e of extents) {
      if (e.hole) {
        const chunk = Buffer.allocUnsafe(NBD_STRUCTURED_REPLY_SIZE + 12);
        this.writeChunkHeader(chunk, request, 0, NBD_REPLY_TYPE_OFFSET_HOLE, 12);
        writeU64(chunk, e.offset, NBD_STRUCTURED_REPLY_SIZE);
        chunk.writeUInt32BE(e.length, NBD_STRUCTURED_REPLY_SIZE + 8);
        chunks.push(chunk);
      } else {
        const chunk = Buffer.allocUnsafe(DATA_CHUNK_HEAD + e.length);
        try {
          await this.readInto(e.offset, e.length, chunk, DATA_CHUNK_HEAD);
        } catch (err) {
          throw new ExtentReadError(e.offset, err);
        }
        this.writeChunkHeader(chunk, request, 0, NBD_REPLY_TYPE_OFFSET_DATA, 8 + e.length);
        writeU64(chunk, e.offset, NBD_STRUCTURED_REPLY_SIZE);
        chunks.push(chunk);
      }
    }
    return false;
  }

  private async readInto(offset: number, length: number, target: Buffer, targetOffset: number): Promise<void> {
    const device = this.device;
    if (device.readTo !== undefined) {
      await device.readTo(offset, length, target, targetOffset);
      return;
    }
    const data = await device.read(offset, length);
    if (data.length !== length) throw new Error('short read');
    data.copy(target, targetOffset);
  }

  /** One BLOCK_STATUS chunk per selected context. */
  private async blockStatus(request: Request, chunks: Buffer[]): Promise<void> {
    const maxRuns = (request.flags & NBD_CMD_FLAG_REQ_ONE) !== 0 ? 1 : MAX_STATUS_RUNS;
    for (const context of this.options.contexts ?? []) {
      chunks.push(this.statusChunk(request, context.id, await statusRuns(this.device, context, request.offset, request.length, maxRuns), maxRuns));
    }
  }

  /**
   * BLOCK_STATUS answered synchronously (the fast path): the chunks, or null
   * when a context's runs can only be had asynchronously or the device threw (the
   * asynchronous path then answers, and reports the error).
   */
  private blockStatusNow(request: Request): Buffer[] | null {
    const maxRuns = (request.flags & NBD_CMD_FLAG_REQ_ONE) !== 0 ? 1 : MAX_STATUS_RUNS;
    const chunks: Buffer[] = [];
    try {
      for (const context of this.options.contexts ?? []) {
        const runs = statusRunsNow(this.device, context, request.offset, request.length, maxRuns);
        if (runs === null) return null;
        chunks.push(this.statusChunk(request, context.id, runs, maxRuns));
      }
    } catch {
      return null;
    }
    return chunks;
  }

  /** One NBD_REPLY_TYPE_BLOCK_STATUS chunk: the context's id and at most maxRuns descriptors. */
  private statusChunk(request: Request, contextId: number, runs: readonly StatusRun[], maxRuns: number): Buffer {
    const n = Math.min(runs.length, maxRuns);
    const chunk = Buffer.allocUnsafe(NBD_STRUCTURED_REPLY_SIZE + 4 + 8 * n);
    this.writeChunkHeader(chunk, request, 0, NBD_REPLY_TYPE_BLOCK_STATUS, 4 + 8 * n);
    chunk.writeUInt32BE(contextId, NBD_STRUCTURED_REPLY_SIZE);
    for (let i = 0; i < n; i++) {
      chunk.writeUInt32BE(Math.min(runs[i]!.length, request.length), NBD_STRUCTURED_REPLY_SIZE + 4 + 8 * i);
      chunk.writeUInt32BE(runs[i]!.flags, NBD_STRUCTURED_REPLY_SIZE + 8 + 8 * i);
    }
    return chunk;
  }

  private errorChunk(request: Request, error: number, message: string, offset: number | null): Buffer {
    const text = Buffer.from(message, 'utf8').subarray(0, 4096);
    const size = 6 + text.length + (offset === null ? 0 : 8);
    const chunk = Buffer.allocUnsafe(NBD_STRUCTURED_REPLY_SIZE + size);
    this.writeChunkHeader(chunk, request, 0, offset === null ? NBD_REPLY_TYPE_ERROR : NBD_REPLY_TYPE_ERROR_OFFSET, size);
    chunk.writeUInt32BE(error, NBD_STRUCTURED_REPLY_SIZE);
    chunk.writeUInt16BE(text.length, NBD_STRUCTURED_REPLY_SIZE + 4);
    text.copy(chunk, NBD_STRUCTURED_REPLY_SIZE + 6);
    if (offset !== null) writeU64(chunk, offset, NBD_STRUCTURED_REPLY_SIZE + 6 + text.length);
    return chunk;
  }

  /** The head of a structured READ answered by one OFFSET_DATA chunk: its header (DONE) and the offset. */
  private writeDataHead(target: Buffer, request: Request): void {
    writeDataChunkHead(target, request.cookieHigh, request.cookieLow, request.offset, request.length);
  }

  private writeChunkHeader(target: Buffer, request: Request, flags: number, type: number, length: number): void {
    writeChunkHead(target, request.cookieHigh, request.cookieLow, flags, type, length);
  }

  private describe(request: Request): string {
    const name = COMMAND_NAMES[request.type] ?? `command ${request.type}`;
    return `${name} of ${request.length} bytes at offset ${request.offset}`;
  }

  /** Why a request must not reach the device, or null. */
  private check(request: Request): Refusal | null {
    const { type, flags, offset, length } = request;
    const device = this.device;
    const writes = type === NBD_CMD_WRITE || type === NBD_CMD_TRIM || type === NBD_CMD_WRITE_ZEROES;
    const status = type === NBD_CMD_BLOCK_STATUS;
    if (type !== NBD_CMD_READ && !writes && type !== NBD_CMD_FLUSH && type !== NBD_CMD_CACHE && !status) {
      return { error: NBD_EINVAL, reason: 'unknown or unsupported command' };
    }
    if (status && (this.options.contexts ?? []).length === 0) {
      return { error: NBD_EINVAL, reason: 'BLOCK_STATUS without a negotiated meta context' };
    }
    const allowedFlags =
      type === NBD_CMD_WRITE_ZEROES
        ? NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO
        : status
          ? NBD_CMD_FLAG_REQ_ONE
          : type === NBD_CMD_CACHE
            ? 0
            : NBD_CMD_FLAG_FUA;
    if ((flags & ~allowedFlags) !== 0) {
      return { error: NBD_EINVAL, reason: `flags 0x${flags.toString(16)} not allowed for this command` };
    }
    if (writes && device.readOnly) return { error: NBD_EPERM, reason: 'the export is read-only' };
    if (type === NBD_CMD_FLUSH) return null; // offset and length are reserved
    if (length === 0) return { error: NBD_EINVAL, reason: 'zero length' };
    if (type === NBD_CMD_READ && length > this.options.maxPayload) {
      return { error: NBD_EINVAL, reason: `longer than the ${this.options.maxPayload}-byte maximum` };
    }
    if (offset + length > device.capacity) {
      const error = type === NBD_CMD_WRITE || type === NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC : NBD_EINVAL;
      return { error, reason: `past the end of the export (${device.capacity} bytes)` };
    }
    const a = this.options.alignment;
    if (offset % a !== 0 || length % a !== 0) return { error: NBD_EINVAL, reason: `not aligned to ${a} bytes` };
    // Every zero write of the engine writes zeroes: a fast one is refused at once (the protocol's FAST_ZERO).
    if (type === NBD_CMD_WRITE_ZEROES && (flags & NBD_CMD_FLAG_FAST_ZERO) !== 0) return { error: NBD_ENOTSUP, reason: '' };
    return null;
  }

  private async execute(request: Request): Promise<Buffer | undefined> {
    const { device } = this;
    const fua = (request.flags & NBD_CMD_FLAG_FUA) !== 0;
    switch (request.type) {
      case NBD_CMD_READ:
        return device.read(request.offset, request.length);
      case NBD_CMD_WRITE:
        await this.write(request.offset, request.payload ?? [], fua);
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

  /** A WRITE's payload is no longer used: buffers the socket read it into go back to the pool. */
  private dropPayload(request: Request): void {
    if (request.payload !== null) recycleReadTargets(request.payload, this.pool);
    request.payload = null;
  }

  /** The pieces go to the device with one pwritev where it can (no joining copy), else joined. */
  private write(offset: number, parts: Buffer[], fua: boolean): Promise<void> {
    const options = fua ? { fua: true } : undefined;
    if (this.device.writev !== undefined) return this.device.writev(offset, parts, options);
    return this.device.write(offset, parts.length === 1 ? parts[0]! : Buffer.concat(parts), options);
  }

  private writeHeader(target: Buffer, request: Request, error: number): void {
    writeSimpleHeader(target, request.cookieHigh, request.cookieLow, error);
  }

  /**
   * Replies of the asynchronous path finished in the same event-loop turn (e.g.
   * all the device reads the poll phase completed) leave in one writev at the
   * check phase. Fast-path replies are written at once (answeringNow).
   */
  private corkForTurn(): void {
    if (this.answeringNow) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(this.uncork);
    }
  }

  /**
   * A fast-path reply written straight to the socket's descriptor, bypassing
   * Node's stream (its write request, callbacks and ticks cost more than the
   * system call for a small reply): only while nothing is queued before it, so
   * frames stay in order. Returns the bytes sent; the caller writes the rest the
   * usual way, at once (a partial frame is never left half-sent).
   */
  private sendDirect(buf: Buffer): number {
    const socket = this.socket;
    if (!this.answeringNow || this.direct === null || this.backlog !== null || socket.writableLength !== 0 || socket.destroyed) return 0;
    const sent = this.direct.sendBytes(buf);
    const counts = this.options.fileReplyCounts;
    if (counts !== undefined && sent > 0) {
      counts.direct++;
      if (sent < buf.length) counts.directPartial++;
    }
    return sent;
  }

  /** A successful READ whose data is already in place after the header room. */
  private replyFrame(request: Request, frame: Buffer, charge: Charge): void {
    const socket = this.socket;
    if (this.hungUp || socket.destroyed || !socket.writable) {
      this.pool.release(frame);
      this.release(charge);
      return;
    }
    this.writeHeader(frame, request, 0);
    if (this.backlog === null) this.writeFrame(frame, charge);
    else this.afterWaiting(0, () => this.writeFrame(frame, charge));
  }

  /** Writes a frame that holds a charge; the frame and its bytes go back once the socket is done with it (sent or failed). */
  private writeFrame(frame: Buffer, charge: Charge): void {
    this.queuedHeld += frame.length;
    this.writeOut(frame, () => {
      this.queuedHeld -= frame.length;
      this.pool.release(frame);
      this.release(charge);
    });
  }

  /**
   * Writes `buf` after everything written before it: straight to the socket's
   * descriptor where sendDirect() may, the rest (or all of it) through the
   * stream, corked for the turn. `done` runs once the stream is done with it
   * (sent or failed), at once when the socket took it all.
   */
  private writeOut(buf: Buffer, done?: () => void): void {
    const sent = this.sendDirect(buf);
    if (sent === buf.length) {
      done?.();
      return;
    }
    this.corkForTurn();
    const rest = sent === 0 ? buf : buf.subarray(sent);
    if (done === undefined) this.socket.write(rest);
    else this.socket.write(rest, () => done());
  }

  /** A complete frame (structured chunk with its data): sent, then its bytes and buffer go back. */
  private sendFrame(frame: Buffer, charge: Charge): void {
    const socket = this.socket;
    if (this.hungUp || socket.destroyed || !socket.writable) {
      this.pool.release(frame);
      this.release(charge);
      return;
    }
    if (this.backlog === null) this.writeFrame(frame, charge);
    else this.afterWaiting(0, () => this.writeFrame(frame, charge));
  }

  /** The chunks of one structured reply, written back to back; the last one carries DONE. */
  private replyChunks(request: Request, chunks: Buffer[], charge: Charge): void {
    const socket = this.socket;
    if (this.hungUp || socket.destroyed || !socket.writable || chunks.length === 0) {
      this.release(charge);
      return;
    }
    const last = chunks[chunks.length - 1]!;
    last.writeUInt16BE(last.readUInt16BE(4) | NBD_REPLY_FLAG_DONE, 4);
    let bytes = 0;
    for (const chunk of chunks) bytes += chunk.length;
    if (this.backlog === null) this.writeChunks(chunks, bytes, charge);
    else this.afterWaiting(Math.max(0, bytes - charge.bytes), () => this.writeChunks(chunks, bytes, charge));
  }

  private writeChunks(chunks: Buffer[], bytes: number, charge: Charge): void {
    this.queuedHeld += bytes;
    for (let i = 0; i < chunks.length - 1; i++) this.writeOut(chunks[i]!);
    this.writeOut(chunks[chunks.length - 1]!, () => {
      this.queuedHeld -= bytes;
      this.release(charge);
    });
  }

  private reply(request: Request, error: number, data: Buffer, charge: Charge): void {
    const socket = this.socket;
    if (this.hungUp || socket.destroyed || !socket.writable) {
      this.release(charge);
      return;
    }
    const header = Buffer.allocUnsafe(NBD_SIMPLE_REPLY_SIZE);
    this.writeHeader(header, request, error);
    if (data.length === 0) this.release(charge);
    if (this.backlog === null) this.writeReply(header, data, charge);
    else this.afterWaiting(header.length + (data.length === 0 ? 0 : Math.max(0, data.length - charge.bytes)), () => this.writeReply(header, data, charge));
  }

  /** A simple reply's header and data, written back to back: frames never interleave. */
  private writeReply(header: Buffer, data: Buffer, charge: Charge): void {
    this.writeOut(header);
    if (data.length === 0) return;
    this.queuedHeld += data.length;
    this.writeOut(data, () => {
      this.queuedHeld -= data.length;
      this.release(charge);
    });
  }
}
