/**
 * A deliberately low-level NBD client for protocol tests: it sends exactly the
 * bytes it is told to and exposes every reply field, so tests can check the
 * server's handshake bytes and its answers to malformed input.
 */
import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { SocketReader } from '../../engine/nbd/socket-reader.js';

export const IHAVEOPT = 0x49484156454f5054n;
export const REQUEST_MAGIC = 0x25609513;

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

export interface SimpleReply {
  magic: number;
  error: number;
  cookie: bigint;
  data: Buffer;
}

/** One chunk of a structured reply. */
export interface ReplyChunk {
  magic: number;
  flags: number;
  type: number;
  cookie: bigint;
  payload: Buffer;
}

/** A request's header fields (and payload); unset ones are 0, the magic the right one. */
export interface RequestFields {
  flags?: number;
  cookie?: bigint;
  offset?: bigint;
  length?: number;
  payload?: Buffer;
  magic?: number;
}

export class RawNbdClient {
  readonly reader: SocketReader;
  readonly closed: Promise<void>;
  private isClosed = false;

  private constructor(readonly socket: Socket) {
    this.reader = new SocketReader(socket);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    void this.closed.then(() => {
      this.isClosed = true;
    });
  }

  static connect(path: string): Promise<RawNbdClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      socket.once('connect', () => resolve(new RawNbdClient(socket)));
      socket.once('error', reject);
    });
  }

  get hasClosed(): boolean {
    return this.isClosed;
  }

  /** Reads the 18-byte greeting and answers with the client flags. */
  async greet(clientFlags = 0b11): Promise<Buffer> {
    const greeting = await this.reader.read(18);
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(clientFlags, 0);
    this.socket.write(flags);
    return greeting;
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0), magic = IHAVEOPT): void {
    const header = Buffer.alloc(16);
    header.writeBigUInt64BE(magic, 0);
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(data.length, 12);
    this.socket.write(Buffer.concat([header, data]));
  }

  async readOptionReply(): Promise<OptionReply & { magic: bigint }> {
    const header = await this.reader.read(20);
    const length = header.readUInt32BE(16);
    return {
      magic: header.readBigUInt64BE(0),
      option: header.readUInt32BE(8),
      type: header.readUInt32BE(12),
      data: Buffer.from(await this.reader.read(length)),
    };
  }

  /** Replies to one option up to the final one (ACK or an error, bit 31). */
  async readOptionReplies(): Promise<OptionReply[]> {
    const replies: OptionReply[] = [];
    for (;;) {
      const reply = await this.readOptionReply();
      replies.push(reply);
      if (reply.type === 1 || reply.type >= 0x80000000) return replies;
    }
  }

  static infoPayload(name: string, infos: number[] = []): Buffer {
    const nameBytes = Buffer.from(name, 'utf8');
    const out = Buffer.alloc(4 + nameBytes.length + 2 + 2 * infos.length);
    out.writeUInt32BE(nameBytes.length, 0);
    nameBytes.copy(out, 4);
    out.writeUInt16BE(infos.length, 4 + nameBytes.length);
    infos.forEach((t, i) => out.writeUInt16BE(t, 4 + nameBytes.length + 2 + 2 * i));
    return out;
  }

  /** Greets, sends NBD_OPT_GO for `name` and expects success. */
  async goTo(name: string): Promise<OptionReply[]> {
    await this.greet();
    this.sendOption(7, RawNbdClient.infoPayload(name));
    const replies = await this.readOptionReplies();
    const last = replies[replies.length - 1];
    if (last?.type !== 1) throw new Error(`NBD_OPT_GO ${name} failed with reply type 0x${last?.type.toString(16)}`);
    return replies;
  }

  sendRequest(type: number, fields: RequestFields = {}): void {
    this.socket.write(RawNbdClient.requestFrame(type, fields));
  }

  /** One request's bytes (header, then payload if any), for sending several in one write. */
  static requestFrame(
    type: number,
    { flags = 0, cookie = 1n, offset = 0n, length = 0, payload, magic = REQUEST_MAGIC }: RequestFields = {},
  ): Buffer {
    const header = Buffer.alloc(28);
    header.writeUInt32BE(magic, 0);
    header.writeUInt16BE(flags, 4);
    header.writeUInt16BE(type, 6);
    header.writeBigUInt64BE(cookie, 8);
    header.writeBigUInt64BE(offset, 16);
    header.writeUInt32BE(length, 24);
    return payload === undefined ? header : Buffer.concat([header, payload]);
  }

  /**
   * Reads one simple reply; `dataLength` bytes (or the length for the reply's
   * cookie) follow only when error is 0.
   */
  async readReply(dataLength: number | ((cookie: bigint) => number) = 0): Promise<SimpleReply> {
    const header = await this.reader.read(16);
    const error = header.readUInt32BE(4);
    const cookie = header.readBigUInt64BE(8);
    if (typeof dataLength === 'function') dataLength = dataLength(cookie);
    const data = error === 0 && dataLength > 0 ? Buffer.from(await this.reader.read(dataLength)) : Buffer.alloc(0);
    return { magic: header.readUInt32BE(0), error, cookie, data };
  }

  /** Reads one structured reply chunk (header and payload). */
  async readChunk(): Promise<ReplyChunk> {
    const header = await this.reader.read(20);
    const length = header.readUInt32BE(16);
    const payload = length > 0 ? Buffer.from(await this.reader.read(length)) : Buffer.alloc(0);
    return { magic: header.readUInt32BE(0), flags: header.readUInt16BE(4), type: header.readUInt16BE(6), cookie: header.readBigUInt64BE(8), payload };
  }

  /** Reads the chunks of one structured reply, up to the one flagged DONE. */
  async readChunks(): Promise<ReplyChunk[]> {
    const chunks: ReplyChunk[] = [];
    for (;;) {
      const chunk = await this.readChunk();
      chunks.push(chunk);
      if ((chunk.flags & 1) !== 0) return chunks;
    }
  }

  /** NBD_OPT_LIST/SET_META_CONTEXT payload: export name and queries. */
  static contextPayload(name: string, queries: string[]): Buffer {
    const parts: Buffer[] = [];
    const u32 = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n, 0);
      return b;
    };
    const nameBytes = Buffer.from(name, 'utf8');
    parts.push(u32(nameBytes.length), nameBytes, u32(queries.length));
    for (const q of queries) {
      const text = Buffer.from(q, 'utf8');
      parts.push(u32(text.length), text);
    }
    return Buffer.concat(parts);
  }

  close(): void {
    this.socket.destroy();
  }
}
