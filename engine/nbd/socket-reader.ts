import type { Socket } from 'node:net';

/** Thrown by SocketReader.read when the peer closed before the bytes arrived. */
export class ConnectionClosedError extends Error {
  constructor() {
    super('connection closed');
    this.name = 'ConnectionClosedError';
  }
}

/**
 * Pull-style reader over a socket: `read(n)` resolves with exactly n bytes.
 * A read that lies inside one received chunk returns a view of it (no copy);
 * otherwise the pieces are copied once into a new buffer. The socket is paused
 * while enough is buffered and nobody is waiting, so a fast client cannot make
 * the server buffer without bound.
 */
export class SocketReader {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private waiting: { n: number; parts: boolean; resolve: (b: Buffer[]) => void; reject: (e: Error) => void } | null = null;
  private ended = false;
  private failure: Error | null = null;

  constructor(
    private readonly socket: Socket,
    /** Pause the socket while at least this much is buffered and unread. */
    private readonly highWater = 4 * 1024 * 1024,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd(null));
    socket.on('close', () => this.onEnd(null));
    socket.on('error', (err) => this.onEnd(err));
  }

  /** Bytes received and not yet read. */
  get available(): number {
    return this.buffered;
  }

  /** The bytes received and not yet read, in order (views; do not modify). */
  unread(): readonly Buffer[] {
    return this.chunks;
  }

  /** The next n bytes if they are already here (no promise, no wait), else null. */
  tryRead(n: number): Buffer | null {
    if (this.waiting !== null || this.buffered < n) return null;
    return this.take(n);
  }

  read(n: number): Promise<Buffer> {
    return this.wait(n, false).then((b) => b[0]!);
  }

  /**
   * The next n bytes as the pieces they arrived in (views, no copy), if they are
   * already here, else null: a WRITE payload goes to the file with one pwritev
   * instead of being joined first.
   */
  tryReadParts(n: number): Buffer[] | null {
    if (this.waiting !== null || this.buffered < n) return null;
    return this.takeParts(n);
  }

  /** readParts(n): like read(n), as the pieces (tryReadParts). */
  readParts(n: number): Promise<Buffer[]> {
    return this.wait(n, true);
  }

  private wait(n: number, parts: boolean): Promise<Buffer[]> {
    if (this.waiting !== null) return Promise.reject(new Error('SocketReader: concurrent read'));
    if (this.buffered >= n) return Promise.resolve(parts ? this.takeParts(n) : [this.take(n)]);
    if (this.ended) return Promise.reject(this.failure ?? new ConnectionClosedError());
    return new Promise<Buffer[]>((resolve, reject) => {
      this.waiting = { n, parts, resolve, reject };
      if (this.socket.isPaused()) this.socket.resume();
    });
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const w = this.waiting;
    if (w !== null && this.buffered >= w.n) {
      this.waiting = null;
      w.resolve(w.parts ? this.takeParts(w.n) : [this.take(w.n)]);
    }
    if (this.waiting === null && this.buffered >= this.highWater) this.socket.pause();
  }

  private onEnd(err: Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = err;
    const w = this.waiting;
    if (w !== null) {
      this.waiting = null;
      w.reject(err ?? new ConnectionClosedError());
    }
  }

  private takeParts(n: number): Buffer[] {
    this.buffered -= n;
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const c = this.chunks[0];
      if (c === undefined) throw new Error('SocketReader: buffer accounting broken');
      if (c.length <= left) {
        out.push(c);
        left -= c.length;
        this.chunks.shift();
      } else {
        out.push(c.subarray(0, left));
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    return out;
  }

  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first !== undefined && first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      if (c === undefined) throw new Error('SocketReader: buffer accounting broken');
      const want = n - filled;
      if (c.length <= want) {
        c.copy(out, filled);
        filled += c.length;
        this.chunks.shift();
      } else {
        c.copy(out, filled, 0, want);
        filled += want;
        this.chunks[0] = c.subarray(want);
      }
    }
    return out;
  }
}
