import type { Socket } from 'node:net';

/** Thrown by SocketReader.read when the peer closed before the bytes arrived. */
export class ConnectionClosedError extends Error {
  constructor() {
    super('connection closed');
    this.name = 'ConnectionClosedError';
  }
}

/** What a waiting read takes once its bytes are here: one buffer, the pieces, or nothing (ready()). */
type Take = 'one' | 'parts' | 'none';

/**
 * Pull-style reader over a socket: `read(n)` resolves with exactly n bytes.
 * A read that lies inside one received chunk returns a view of it (no copy);
 * otherwise the pieces are copied once into a new buffer. The socket is paused
 * while enough is buffered and nobody is waiting, so a fast client cannot make
 * the server buffer without bound.
 */
export class SocketReader {
  private readonly chunks: Buffer[] = [];
  /** Bytes of chunks[0] already read (kept as an offset: re-slicing it per read cost an allocation). */
  private head = 0;
  private buffered = 0;
  /** A read waiting for n bytes: it takes them as one buffer, as pieces, or none (ready()). */
  private waiting: { n: number; take: Take; resolve: (b: Buffer[]) => void; reject: (e: Error) => void } | null = null;
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
    const first = this.chunks[0];
    if (first === undefined || this.head === 0) return this.chunks;
    return [first.subarray(this.head), ...this.chunks.slice(1)];
  }

  /**
   * The buffer holding the next bytes received and not yet read (do not
   * modify), or null when none is here or a read is waiting. They start at
   * frontOffset. With skip(), lets a caller parse what is already here in
   * place, taking nothing until it decides to.
   */
  front(): Buffer | null {
    if (this.waiting !== null) return null;
    return this.chunks[0] ?? null;
  }

  /** Where the next unread byte is in front(). */
  get frontOffset(): number {
    return this.head;
  }

  /** Drops the next n bytes, all within front() (the caller parsed them there). */
  skip(n: number): void {
    const first = this.chunks[0];
    if (first === undefined || first.length - this.head < n) throw new Error('SocketReader: skip past the first buffer');
    this.buffered -= n;
    this.advanceHead(first, n);
  }

  /** Moves past n bytes of chunks[0] (`first`), dropping it once all are read. */
  private advanceHead(first: Buffer, n: number): void {
    this.head += n;
    if (this.head === first.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }

  /** The next n bytes if they are already here (no promise, no wait), else null. */
  tryRead(n: number): Buffer | null {
    if (this.waiting !== null || this.buffered < n) return null;
    return this.take(n);
  }

  read(n: number): Promise<Buffer> {
    return this.wait(n, 'one').then((b) => b[0]!);
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
    return this.wait(n, 'parts');
  }

  /**
   * Resolves once n bytes are here, taking none of them (they are then read
   * with tryRead(), or in place with front() and skip()). Rejects like read().
   */
  async ready(n: number): Promise<void> {
    await this.wait(n, 'none');
  }

  private wait(n: number, take: Take): Promise<Buffer[]> {
    if (this.waiting !== null) return Promise.reject(new Error('SocketReader: concurrent read'));
    if (this.buffered >= n) return Promise.resolve(this.taken(n, take));
    if (this.ended) return Promise.reject(this.failure ?? new ConnectionClosedError());
    return new Promise<Buffer[]>((resolve, reject) => {
      this.waiting = { n, take, resolve, reject };
      if (this.socket.isPaused()) this.socket.resume();
    });
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const w = this.waiting;
    if (w !== null && this.buffered >= w.n) {
      this.waiting = null;
      w.resolve(this.taken(w.n, w.take));
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

  private taken(n: number, take: Take): Buffer[] {
    if (take === 'one') return [this.take(n)];
    return take === 'parts' ? this.takeParts(n) : [];
  }

  private takeParts(n: number): Buffer[] {
    this.buffered -= n;
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const c = this.chunks[0];
      if (c === undefined) throw new Error('SocketReader: buffer accounting broken');
      const here = Math.min(c.length - this.head, left);
      out.push(this.head === 0 && here === c.length ? c : c.subarray(this.head, this.head + here));
      left -= here;
      this.advanceHead(c, here);
    }
    return out;
  }

  private take(n: number): Buffer {
    this.buffered -= n;
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.head >= n) {
      const start = this.head;
      this.advanceHead(first, n);
      return first.subarray(start, start + n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      if (c === undefined) throw new Error('SocketReader: buffer accounting broken');
      const here = Math.min(c.length - this.head, n - filled);
      c.copy(out, filled, this.head, this.head + here);
      filled += here;
      this.advanceHead(c, here);
    }
    return out;
  }
}
