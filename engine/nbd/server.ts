/**
 * The NBD server: exports BlockDevices (engine devices, snapshot images) over a
 * Unix socket and, when asked, over TCP on 127.0.0.1 only.
 */
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { BlksnapError } from '../abi/errno.js';
import { BufferPool } from './buffer-pool.js';
import { SocketReceivers } from './socket-receivers.js';
import { eventLoopFd } from '../core/poll-now.js';
import { IdleSpin } from './idle-spin.js';
import type { SpinStats } from './idle-spin.js';
import type { ReceiverStats } from './socket-receivers.js';
import { ByteBudget } from './byte-budget.js';
import { NbdConnection } from './connection.js';
import type { ConnectionLimits } from './connection.js';
import type { ExportSource } from './export-source.js';
import { RateLimitedLog } from './rate-limited-log.js';
import { withReadBuffer } from './socket-read-buffer.js';
import type { SlabUse } from './socket-read-buffer.js';
import { WritePayloadScanner } from './write-payload-scanner.js';
import { tcpUri, unixUri } from './uri.js';
import { descriptorOf, noFileReplies } from './file-reply.js';
import type { FileReplyCounts } from './file-reply.js';

export interface NbdServerOptions {
  exports: ExportSource;
  /** Listen on this Unix socket path (a stale socket there is replaced). */
  unixSocket?: string;
  /** Mode of the Unix socket file (e.g. 0o660); left to the umask when unset. */
  unixSocketMode?: number;
  /** Also listen on 127.0.0.1:tcpPort (0 picks a free port). Never on other addresses. */
  tcpPort?: number;
  /** Export served for the empty name (the protocol's default export). */
  defaultExport?: string;
  /** Advertise NBD_FLAG_CAN_MULTI_CONN (default true: all connections share one device). */
  multiConn?: boolean;
  limits?: Partial<ServerLimits>;
  log?: (message: string) => void;
  /** Milliseconds clock of the log's rate limit (default Date.now; tests pass a frozen one). */
  clock?: () => number;
  /**
   * Threads that receive large WRITE payloads (at least 256 KiB still to come)
   * beside the event loop (engine/nbd/socket-receivers.ts); 0: the event loop
   * reads everything. Default DEFAULT_RECEIVE_THREADS.
   */
  receiveThreads?: number;
  /**
   * How long (ms) a receive thread serving a connection's WRITEs itself (a
   * stream, socket-receivers.ts) waits for the client's next request before
   * it gives the connection back to the event loop. Default
   * DEFAULT_STREAM_IDLE_MS.
   */
  streamIdleMs?: number;
  /**
   * How long (ms) a receive thread that has written a WRITE waits for its
   * connection to let it go on as a stream (socket-receivers.ts) before the
   * WRITE is answered as usual. Default 0: a reply is never held back for a
   * stream (tests raise it to make a stream begin for sure).
   */
  streamGoWaitMs?: number;
  /**
   * Longest busy wait (µs) before the event loop sleeps while a client is in a
   * quick exchange (engine/nbd/idle-spin.ts); 0: never. Default DEFAULT_SPIN_MICROS.
   */
  spinMicros?: number;
}

/** A tenth of a millisecond: longer than a client's turn-around under load (docs/nbd.md, "The idle spin"). */
export const DEFAULT_SPIN_MICROS = 100;

/** Four: nbdcopy and qemu-img convert write over four connections at once. */
export const DEFAULT_RECEIVE_THREADS = 4;

/** A fiftieth of a second: a thread is not kept for a client that pauses longer (the event loop waits for it instead). */
export const DEFAULT_STREAM_IDLE_MS = 20;

/** Server-wide limits, on top of the per-connection ones. */
export interface ServerLimits extends ConnectionLimits {
  /** Connections open at once (negotiating, serving, or finishing requests); more are refused. */
  maxConnections: number;
  /** READ/WRITE bytes all connections together may hold beyond their own reserves. */
  sharedBytes: number;
  /** Bytes of free reply frames kept for reuse, shared by all connections. */
  bufferPoolBytes: number;
  /** Log lines a second for the whole server (summaries count what was held back). */
  serverLogLinesPerSecond: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
/** Most bytes one socket read takes (a buffer of this size per connection; Node's own reads take 64 KiB). */
const SOCKET_READ_BYTES = 256 * KiB;

/**
 * The defaults bound what clients can make the server hold: per connection
 * readBufferBytes + maxInFlightBytes (+ maxQueuedReplyBytes of small replies),
 * and for the whole server maxConnections × (reserveBytes + readBufferBytes)
 * + sharedBytes + bufferPoolBytes. docs/nbd.md explains the numbers.
 */
export const DEFAULT_LIMITS: ServerLimits = {
  maxConnections: 128,
  maxPayload: 32 * MiB,
  maxInFlight: 64,
  maxInFlightBytes: 64 * MiB,
  maxQueuedReplyBytes: 256 * KiB,
  // Enough to keep the socket busy while the next reads run; few enough that a
  // reply is sent while its data is still in the CPU's cache (docs/nbd.md).
  readAheadBytes: 4 * MiB,
  // Below this, the copy a reply saves costs less than the system calls that save it.
  fileReplyMinBytes: 128 * KiB,
  reserveBytes: 1 * MiB,
  readBufferBytes: 1 * MiB,
  sharedBytes: 192 * MiB,
  // Room for one reply frame of the largest READ (32 MiB and its 16-byte header):
  // at 32 MiB exactly, 32 MiB reads would never be pooled and each leave garbage.
  bufferPoolBytes: 33 * MiB,
  maxOptionLength: 64 * KiB,
  maxHandshakeQueuedBytes: 64 * KiB,
  handshakeTimeoutMs: 30_000,
  logLinesPerSecond: 5,
  serverLogLinesPerSecond: 20,
};

/** What the server holds now (for monitoring, tests and the bench). */
export interface NbdServerStats {
  connections: number;
  /** Connections whose client has gone, still finishing requests already inside the device. */
  finishing: number;
  /** Requests running on all connections. */
  requests: number;
  /** READ/WRITE bytes held by all connections (requests running, replies not sent). */
  heldBytes: number;
  /** Bytes of the shared budget in use, and requests waiting for it. */
  sharedBytesInUse: number;
  waitingForBytes: number;
  /** Connections refused because maxConnections were open. */
  refusedConnections: number;
  /** READ replies sent from the page cache by reference since the server started (engine/nbd/file-reply.ts). */
  fileReplies: FileReplyCounts;
  /** WRITE payloads received on threads beside the event loop (none when receiveThreads is 0). */
  receivers: ReceiverStats;
  /** Busy waits before the event loop slept (idle-spin.ts). */
  spin: SpinStats;
}

const SHUTDOWN_GRACE_MS = 5_000;

function listen(server: Server, ...args: [string] | [number, string]): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    const done = (): void => {
      server.off('error', onError);
      resolve();
    };
    if (args.length === 1) server.listen(args[0], done);
    else server.listen(args[0], args[1], done);
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** True when something accepts connections on the Unix socket at `path`. */
function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

export class NbdServer {
  private readonly options: NbdServerOptions;
  private readonly limits: ServerLimits;
  private readonly budget: ByteBudget;
  private readonly pool: BufferPool;
  private readonly receivers: SocketReceivers | undefined;
  private readonly spinner: IdleSpin;
  private readonly fileReplies: FileReplyCounts = noFileReplies();
  private readonly serverLog: RateLimitedLog;
  private refused = 0;
  private readonly listeners: Server[] = [];
  private readonly connections = new Set<NbdConnection>();
  private nextId = 1;
  private boundTcpPort: number | null = null;
  private state: 'new' | 'running' | 'closing' | 'closed' = 'new';

  constructor(options: NbdServerOptions) {
    if (options.unixSocket === undefined && options.tcpPort === undefined) {
      throw new BlksnapError('EINVAL', 'the NBD server needs a Unix socket path or a TCP port');
    }
    this.options = options;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.budget = new ByteBudget(this.limits.sharedBytes);
    this.pool = new BufferPool(this.limits.bufferPoolBytes);
    const threads = this.options.receiveThreads ?? DEFAULT_RECEIVE_THREADS;
    this.receivers = threads > 0 ? new SocketReceivers(threads, { streamIdleMs: options.streamIdleMs ?? DEFAULT_STREAM_IDLE_MS, goWaitMs: options.streamGoWaitMs ?? 0 }) : undefined;
    this.spinner = new IdleSpin({ micros: options.spinMicros ?? DEFAULT_SPIN_MICROS, mayBlock: () => this.nothingRunning() });
    this.serverLog = new RateLimitedLog((m) => this.options.log?.(m), this.limits.serverLogLinesPerSecond, 'nbd', options.clock);
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new BlksnapError('EALREADY', 'the NBD server was already started');
    this.state = 'running';
    // A spin ends on anything the event loop would wake for: a thread-pool
    // completion, a worker's message, the helper's own sockets and signals.
    const loopFd = eventLoopFd();
    if (loopFd !== null) this.spinner.watch(loopFd);
    try {
      const { unixSocket, tcpPort } = this.options;
      if (unixSocket !== undefined) {
        await this.clearStaleSocket(unixSocket);
        const server = this.makeListener();
        await listen(server, unixSocket);
        this.listeners.push(server);
        this.spinner.watch(descriptorOf(server));
        if (this.options.unixSocketMode !== undefined) await chmod(unixSocket, this.options.unixSocketMode);
      }
      if (tcpPort !== undefined) {
        const server = this.makeListener();
        await listen(server, tcpPort, '127.0.0.1');
        this.listeners.push(server);
        this.spinner.watch(descriptorOf(server));
        const address = server.address();
        this.boundTcpPort = typeof address === 'object' && address !== null ? address.port : tcpPort;
      }
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /** The URI of an export: the Unix socket one when there is a socket, else TCP. */
  uriFor(name: string, transport?: 'unix' | 'tcp'): string {
    const { unixSocket } = this.options;
    const wantTcp = transport === 'tcp' || (transport === undefined && unixSocket === undefined);
    if (!wantTcp && unixSocket !== undefined) return unixUri(name, unixSocket);
    if (this.boundTcpPort === null) throw new BlksnapError('ENXIO', 'the NBD server is not listening on TCP');
    return tcpUri(name, this.boundTcpPort);
  }

  /** The TCP port listened on, or null. */
  get tcpPort(): number | null {
    return this.boundTcpPort;
  }

  get socketPath(): string | undefined {
    return this.options.unixSocket;
  }

  /**
   * Starts the receive threads now rather than at the first large WRITEs
   * (which are read by the event loop until they are ready); resolves when
   * they are ready.
   */
  async startReceivers(): Promise<void> {
    await this.receivers?.start();
  }

  /** Connections open now, with the export each serves (null while negotiating). */
  listConnections(): { id: number; export: string | null }[] {
    return [...this.connections].map((c) => ({ id: c.id, export: c.export }));
  }

  stats(): NbdServerStats {
    let requests = 0;
    let heldBytes = 0;
    let finishing = 0;
    for (const c of this.connections) {
      requests += c.pending;
      heldBytes += c.heldBytes;
      if (c.clientGone) finishing++;
    }
    return {
      connections: this.connections.size,
      finishing,
      requests,
      heldBytes,
      sharedBytesInUse: this.budget.inUse,
      waitingForBytes: this.budget.waiting,
      refusedConnections: this.refused,
      fileReplies: { ...this.fileReplies },
      receivers: this.receivers?.stats() ?? { workers: 0, busy: 0, receives: 0, bytes: 0, writes: 0, writtenBytes: 0, streams: 0, streamedWrites: 0, streamedBytes: 0 },
      spin: this.spinner.stats(),
    };
  }

  /**
   * The idle spin may hold the event loop: no connection is still negotiating
   * (its handshake may wait on an export being opened), no request runs on any
   * connection, and no payload is being received on a thread. (The spin also
   * ends on anything the event loop's own descriptor reports, where it has it:
   * the two guard each other.)
   */
  private nothingRunning(): boolean {
    if (this.receivers !== undefined && this.receivers.busyCount !== 0) return false;
    for (const c of this.connections) if (!c.negotiated || c.pending !== 0) return false;
    return true;
  }

  /** Stops listening, lets running requests finish (briefly), and closes every connection. */
  async close(): Promise<void> {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.state = 'closing';
    this.spinner.stop();
    const closing = this.listeners.map(closeServer);
    await Promise.all([...this.connections].map((c) => c.shutdown(SHUTDOWN_GRACE_MS)));
    await Promise.all(closing);
    await this.receivers?.close();
    this.listeners.length = 0;
    this.pool.clear();
    this.serverLog.flush();
    const { unixSocket } = this.options;
    if (unixSocket !== undefined) {
      try {
        if ((await lstat(unixSocket)).isSocket()) await unlink(unixSocket);
      } catch {
        // already gone
      }
    }
    this.state = 'closed';
  }

  private makeListener(): Server {
    // Paused: accept() moves the socket to large reads (withReadBuffer) before anything is read.
    const server = createServer({ noDelay: true, pauseOnConnect: true }, (socket) => this.accept(socket));
    server.on('error', (err) => this.log(`nbd: listener error: ${err.message}`));
    return server;
  }

  private accept(accepted: Socket): void {
    if (this.state !== 'running') {
      accepted.destroy();
      return;
    }
    const scanner = new WritePayloadScanner();
    // Nothing may read into the slab again from its start until the transmission says so.
    const slabUse: SlabUse = { unheldBeyond: () => false };
    const socket = withReadBuffer(accepted, SOCKET_READ_BYTES, scanner, this.pool, this.receivers, slabUse);
    socket.on('error', () => {
      // reported through the connection's reader
    });
    const id = this.nextId++;
    if (this.connections.size >= this.limits.maxConnections) {
      // Refused before the greeting: the client sees the connection closed at once.
      this.refused++;
      this.serverLog.log(`nbd[${id}]: refused: ${this.limits.maxConnections} connections are open (the limit)`);
      socket.destroy();
      return;
    }
    const connection = new NbdConnection(
      socket,
      {
        ...this.limits,
        source: this.options.exports,
        defaultExport: this.options.defaultExport,
        multiConn: this.options.multiConn ?? true,
        log: (m) => this.serverLog.log(m),
        budget: this.budget,
        pool: this.pool,
        fileReplyCounts: this.fileReplies,
        clock: this.options.clock ?? Date.now,
        isShuttingDown: () => this.state !== 'running',
        payloadScanner: scanner,
        spinner: this.spinner,
        slabUse,
      },
      id,
    );
    this.connections.add(connection);
    // A connection counts until its last request has finished, even after a hang-up.
    void connection.settled().finally(() => this.connections.delete(connection));
  }

  private async clearStaleSocket(path: string): Promise<void> {
    let isSocket: boolean;
    try {
      isSocket = (await lstat(path)).isSocket();
    } catch {
      return; // nothing there
    }
    if (!isSocket) throw new BlksnapError('EEXIST', `${path} exists and is not a socket`);
    if (await socketIsLive(path)) throw new BlksnapError('EBUSY', `another server listens on ${path}`);
    await unlink(path);
  }

  private log(message: string): void {
    this.options.log?.(message);
  }
}
