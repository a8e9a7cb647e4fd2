import type { Socket } from 'node:net';
import type { BufferPool } from './buffer-pool.js';
import type { ByteBudget } from './byte-budget.js';
import type { ExportSource } from './export-source.js';
import type { FileReplyCounts } from './file-reply.js';
import type { IdleSpin } from './idle-spin.js';
import type { SlabUse } from './socket-read-buffer.js';
import { blockSizesFor } from './flags.js';
import { negotiate, NbdProtocolError } from './negotiation.js';
import { RateLimitedLog } from './rate-limited-log.js';
import { ConnectionClosedError, SocketReader } from './socket-reader.js';
import { Transmission } from './transmission.js';
import type { WritePayloadScanner } from './write-payload-scanner.js';

/** Per-connection limits (the numbers are in DEFAULT_LIMITS and docs/nbd.md). */
export interface ConnectionLimits {
  /** Largest READ/WRITE payload (and the advertised maximum block size). */
  maxPayload: number;
  /** Requests running at once on one connection. */
  maxInFlight: number;
  /** READ/WRITE bytes one connection may hold: running requests and replies not yet sent. */
  maxInFlightBytes: number;
  /** Bytes of other replies (headers, errors) queued on one socket. */
  maxQueuedReplyBytes: number;
  /**
   * READ bytes one connection holds (reads running, replies not yet sent) at or
   * past which it starts no further READ (two may always run): replies leave
   * while their data is still in the CPU's cache.
   */
  readAheadBytes: number;
  /**
   * READs of at least this many bytes of a device's live data, all in the page
   * cache, are sent from it by reference (sendfile(2), engine/nbd/file-reply.ts).
   * Infinity: never.
   */
  fileReplyMinBytes: number;
  /** Bytes a connection may hold without the server-wide budget (so small requests never wait for it). */
  reserveBytes: number;
  /** Received bytes buffered while the server does not read (the socket is paused past this). */
  readBufferBytes: number;
  /** Longest option payload in the handshake. */
  maxOptionLength: number;
  /** Option replies queued on the socket before the server stops reading options. */
  maxHandshakeQueuedBytes: number;
  handshakeTimeoutMs: number;
  /** Log lines a second about one connection's refused requests and errors. */
  logLinesPerSecond: number;
}

export interface ConnectionOptions extends ConnectionLimits {
  source: ExportSource;
  defaultExport: string | undefined;
  multiConn: boolean;
  /** The server's (rate-limited) log. */
  log: (message: string) => void;
  budget: ByteBudget;
  pool: BufferPool;
  /** The server's count of replies sent by reference. */
  fileReplyCounts: FileReplyCounts;
  /** Clock of the log's rate limit. */
  clock: () => number;
  isShuttingDown(): boolean;
  /** Follows the transmission's frames for the socket's direct payload reads, from its start. */
  payloadScanner?: WritePayloadScanner;
  /** The server's spin before its event loop sleeps (idle-spin.ts). */
  spinner?: IdleSpin;
  /** The socket's read buffer asks it whether its slab may be read into again from the start (told once the transmission runs). */
  slabUse?: SlabUse;
}

/** One client connection: handshake, then transmission, then the socket closes. */
export class NbdConnection {
  private transmission: Transmission | null = null;
  private exportName: string | null = null;
  private readonly log: RateLimitedLog;
  readonly done: Promise<void>;

  constructor(
    private readonly socket: Socket,
    private readonly options: ConnectionOptions,
    readonly id: number,
  ) {
    this.log = new RateLimitedLog(options.log, options.logLinesPerSecond, `nbd[${id}]`, options.clock);
    this.done = this.run();
  }

  /** The export served, once negotiated. */
  get export(): string | null {
    return this.exportName;
  }

  /** Past the handshake: the transmission phase has begun. */
  get negotiated(): boolean {
    return this.transmission !== null;
  }

  /** Requests running now. */
  get pending(): number {
    return this.transmission?.pending ?? 0;
  }

  /** True once the client has hung up while its requests were being served. */
  get clientGone(): boolean {
    return this.transmission?.clientGone ?? false;
  }

  /** READ/WRITE bytes held now (requests running, replies not sent). */
  get heldBytes(): number {
    return this.transmission?.heldBytes ?? 0;
  }

  /** Resolves once no request of this connection runs any more. */
  async settled(): Promise<void> {
    await this.done;
    await this.transmission?.idle();
  }

  private async run(): Promise<void> {
    const { socket, options, log } = this;
    const reader = new SocketReader(socket, options.readBufferBytes);
    const timer = setTimeout(() => {
      log.log(`nbd[${this.id}]: handshake timed out`);
      socket.destroy();
    }, options.handshakeTimeoutMs);
    timer.unref();
    try {
      const chosen = await negotiate({
        socket,
        reader,
        source: options.source,
        defaultExport: options.defaultExport,
        multiConn: options.multiConn,
        maxPayload: options.maxPayload,
        maxOptionLength: options.maxOptionLength,
        maxQueuedBytes: options.maxHandshakeQueuedBytes,
        isShuttingDown: options.isShuttingDown,
      });
      clearTimeout(timer);
      if (chosen === null) return;
      this.exportName = chosen.name;
      const sizes = blockSizesFor(chosen.device, options.maxPayload);
      options.payloadScanner?.start(reader.unread());
      this.transmission = new Transmission(socket, reader, chosen.device, {
        maxPayload: options.maxPayload,
        maxInFlight: options.maxInFlight,
        maxInFlightBytes: options.maxInFlightBytes,
        maxQueuedReplyBytes: options.maxQueuedReplyBytes,
        readAheadBytes: options.readAheadBytes,
        fileReplyMinBytes: options.fileReplyMinBytes,
        fileReplyCounts: options.fileReplyCounts,
        reserveBytes: options.reserveBytes,
        budget: options.budget,
        pool: options.pool,
        alignment: sizes.minimum,
        structured: chosen.structured,
        contexts: chosen.contexts,
        onRefused: (what, reason) => log.log(`nbd[${this.id}] "${chosen.name}": refused ${what}: ${reason}`),
        ...(options.spinner === undefined ? {} : { spinner: options.spinner }),
      });
      const transmission = this.transmission;
      if (options.slabUse !== undefined) options.slabUse.unheldBeyond = (bytes) => transmission.holdsOnlyUnread(bytes);
      if (options.payloadScanner !== undefined) options.payloadScanner.writer = (header, received) => transmission.payloadWrite(header, received);
      await this.transmission.run();
    } catch (err) {
      if (err instanceof NbdProtocolError) log.log(`nbd[${this.id}]: ${err.message}; dropping the connection`);
      else if (!(err instanceof ConnectionClosedError)) {
        log.log(`nbd[${this.id}]: connection error: ${err instanceof Error ? err.message : String(err)}`);
      }
      // Let replies already running finish into the void, then drop.
      socket.destroy();
    } finally {
      clearTimeout(timer);
      if (options.slabUse !== undefined) options.slabUse.unheldBeyond = () => false;
      if (options.payloadScanner !== undefined) options.payloadScanner.writer = null;
      log.flush();
    }
    // Soft disconnect (NBD_OPT_ABORT, NBD_CMD_DISC): our side is ended; do not
    // wait forever for the client to close its side.
    if (!socket.destroyed) setTimeout(() => socket.destroy(), 2000).unref();
  }

  /**
   * Server shutdown: waits (up to timeoutMs) for the requests running to be
   * answered, sends what is queued (end), and drops the connection.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    const t = this.transmission;
    const socket = this.socket;
    const timers: NodeJS.Timeout[] = [];
    t?.beginShutdown();
    const within = (p: Promise<void>, ms: number): Promise<void> =>
      Promise.race([p, new Promise<void>((resolve) => timers.push(setTimeout(resolve, ms)))]);
    if (t !== null && t.pending > 0) await within(t.idle(), timeoutMs);
    if (t !== null && !socket.destroyed) {
      // end() uncorks and sends the replies still queued, then closes our side.
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.end();
      await within(closed, 1000);
    }
    for (const timer of timers) clearTimeout(timer);
    socket.destroy();
    await this.done;
  }
}
