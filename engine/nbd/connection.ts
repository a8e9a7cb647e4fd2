import type { Socket } from 'node:net';
import type { ExportSource } from './export-source.js';
import { blockSizesFor } from './flags.js';
import { negotiate, NbdProtocolError } from './negotiation.js';
import { ConnectionClosedError, SocketReader } from './socket-reader.js';
import { Transmission } from './transmission.js';

export interface ConnectionLimits {
  maxPayload: number;
  maxInFlight: number;
  maxInFlightBytes: number;
  maxQueuedReplyBytes: number;
  maxOptionLength: number;
  handshakeTimeoutMs: number;
}

export interface ConnectionOptions extends ConnectionLimits {
  source: ExportSource;
  defaultExport: string | undefined;
  multiConn: boolean;
  log: (message: string) => void;
  isShuttingDown(): boolean;
}

/** One client connection: handshake, then transmission, then the socket closes. */
export class NbdConnection {
  private transmission: Transmission | null = null;
  private exportName: string | null = null;
  readonly done: Promise<void>;

  constructor(
    private readonly socket: Socket,
    private readonly options: ConnectionOptions,
    readonly id: number,
  ) {
    this.done = this.run();
  }

  /** The export served, once negotiated. */
  get export(): string | null {
    return this.exportName;
  }

  private async run(): Promise<void> {
    const { socket, options } = this;
    const reader = new SocketReader(socket, Math.max(4 * 1024 * 1024, options.maxPayload + 64));
    const timer = setTimeout(() => {
      options.log(`nbd[${this.id}]: handshake timed out`);
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
        isShuttingDown: options.isShuttingDown,
      });
      clearTimeout(timer);
      if (chosen === null) return;
      this.exportName = chosen.name;
      const sizes = blockSizesFor(chosen.device, options.maxPayload);
      this.transmission = new Transmission(socket, reader, chosen.device, {
        maxPayload: options.maxPayload,
        maxInFlight: options.maxInFlight,
        maxInFlightBytes: options.maxInFlightBytes,
        maxQueuedReplyBytes: options.maxQueuedReplyBytes,
        alignment: sizes.minimum,
      });
      await this.transmission.run();
    } catch (err) {
      if (err instanceof NbdProtocolError) options.log(`nbd[${this.id}]: ${err.message}; dropping the connection`);
      else if (!(err instanceof ConnectionClosedError)) {
        options.log(`nbd[${this.id}]: connection error: ${err instanceof Error ? err.message : String(err)}`);
      }
      // Let replies already running finish into the void, then drop.
      socket.destroy();
    } finally {
      clearTimeout(timer);
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
