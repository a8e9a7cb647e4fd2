/**
 * The fixed-newstyle handshake and option haggling, up to the transmission phase.
 */
import type { Socket } from 'node:net';
import type { BlockDevice } from '../core/block-device.js';
import {
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_EXPORT,
  NBD_INFO_NAME,
  NBD_INIT_MAGIC,
  NBD_MAX_STRING,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_OPTION_HEADER_SIZE,
  NBD_OPTION_REPLY_HEADER_SIZE,
  NBD_OPTS_MAGIC,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_SHUTDOWN,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_INFO,
  NBD_REP_MAGIC,
  NBD_REP_META_CONTEXT,
  NBD_REP_SERVER,
} from './constants.js';
import type { ExportEntry, ExportSource } from './export-source.js';
import { blockSizesFor, transmissionFlags } from './flags.js';
import { contextNamesFor, matchQuery, sinceOf } from './meta-context.js';
import type { MetaContext } from './meta-context.js';
import type { SocketReader } from './socket-reader.js';

/** The client broke the protocol; the server drops the connection (hard disconnect). */
export class NbdProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NbdProtocolError';
  }
}

export interface NegotiationContext {
  socket: Socket;
  reader: SocketReader;
  source: ExportSource;
  /** Export used for the empty name (the protocol's "default export"). */
  defaultExport: string | undefined;
  multiConn: boolean;
  maxPayload: number;
  /** Longest option payload accepted; anything larger is a hard disconnect. */
  maxOptionLength: number;
  /** Option replies queued on the socket before the server stops reading options. */
  maxQueuedBytes: number;
  isShuttingDown(): boolean;
}

export interface NegotiatedExport {
  name: string;
  device: BlockDevice;
  flags: number;
  /** NBD_OPT_STRUCTURED_REPLY was agreed: reads and block status use structured replies. */
  structured: boolean;
  /** The contexts NBD_OPT_SET_META_CONTEXT selected (for this export), by id. */
  contexts: MetaContext[];
}

/** What the options negotiated so far hold. */
interface Haggled {
  structured: boolean;
  /** Export the selected contexts belong to, and the contexts. */
  contextsFor: string | null;
  contexts: MetaContext[];
}

/** Most contexts one SET_META_CONTEXT may select (they all answer every BLOCK_STATUS). */
const MAX_CONTEXTS = 16;

const ZEROES_124 = Buffer.alloc(124);

function u16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(n, 0);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(n), 0);
  return b;
}

function sendOptionReply(socket: Socket, option: number, type: number, data: Buffer = Buffer.alloc(0)): void {
  const header = Buffer.allocUnsafe(NBD_OPTION_REPLY_HEADER_SIZE);
  header.writeBigUInt64BE(NBD_REP_MAGIC, 0);
  header.writeUInt32BE(option >>> 0, 8);
  header.writeUInt32BE(type >>> 0, 12);
  header.writeUInt32BE(data.length, 16);
  socket.write(data.length > 0 ? Buffer.concat([header, data]) : header);
}

function sendOptionError(socket: Socket, option: number, type: number, message: string): void {
  sendOptionReply(socket, option, type, Buffer.from(message, 'utf8'));
}

/** What NBD_OPT_INFO / NBD_OPT_GO carry: an export name and the info types asked for. */
function parseInfoRequest(data: Buffer): { name: string; requests: number[] } | null {
  if (data.length < 6) return null;
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 6 || nameLength > NBD_MAX_STRING) return null;
  const name = data.toString('utf8', 4, 4 + nameLength);
  const count = data.readUInt16BE(4 + nameLength);
  if (data.length !== 4 + nameLength + 2 + 2 * count) return null;
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(data.readUInt16BE(4 + nameLength + 2 + 2 * i));
  return { name, requests };
}

function lookUp(ctx: NegotiationContext, requested: string): { name: string; device: BlockDevice } | undefined {
  const name = requested === '' && ctx.defaultExport !== undefined ? ctx.defaultExport : requested;
  let device: BlockDevice | undefined;
  try {
    device = ctx.source.open(name);
  } catch {
    device = undefined;
  }
  return device === undefined ? undefined : { name, device };
}

function descriptionOf(ctx: NegotiationContext, name: string): string | undefined {
  try {
    return ctx.source.list().find((e) => e.name === name)?.description;
  } catch {
    return undefined;
  }
}

/** Answers NBD_OPT_INFO / NBD_OPT_GO; returns the export when GO succeeded. */
function answerInfo(ctx: NegotiationContext, option: number, data: Buffer): NegotiatedExport | null {
  const { socket } = ctx;
  const request = parseInfoRequest(data);
  if (request === null) {
    sendOptionError(socket, option, NBD_REP_ERR_INVALID, 'malformed NBD_OPT_INFO/GO payload');
    return null;
  }
  const found = lookUp(ctx, request.name);
  if (found === undefined) {
    sendOptionError(socket, option, NBD_REP_ERR_UNKNOWN, `no export named "${request.name}"`);
    return null;
  }
  const { device, name } = found;
  const flags = transmissionFlags(device, ctx.multiConn);
  const exportInfo = Buffer.allocUnsafe(12);
  exportInfo.writeUInt16BE(NBD_INFO_EXPORT, 0);
  exportInfo.writeBigUInt64BE(BigInt(device.capacity), 2);
  exportInfo.writeUInt16BE(flags, 10);
  sendOptionReply(socket, option, NBD_REP_INFO, exportInfo);
  if (request.requests.includes(NBD_INFO_NAME)) {
    sendOptionReply(socket, option, NBD_REP_INFO, Buffer.concat([u16(NBD_INFO_NAME), Buffer.from(name, 'utf8')]));
  }
  if (request.requests.includes(NBD_INFO_DESCRIPTION)) {
    const description = descriptionOf(ctx, name);
    if (description !== undefined) {
      const text = Buffer.from(description, 'utf8').subarray(0, NBD_MAX_STRING);
      sendOptionReply(socket, option, NBD_REP_INFO, Buffer.concat([u16(NBD_INFO_DESCRIPTION), text]));
    }
  }
  // Always sent: the server may give block sizes unasked, and clients honour them.
  const sizes = blockSizesFor(device, ctx.maxPayload);
  sendOptionReply(
    socket,
    option,
    NBD_REP_INFO,
    Buffer.concat([u16(NBD_INFO_BLOCK_SIZE), u32(sizes.minimum), u32(sizes.preferred), u32(sizes.maximum)]),
  );
  sendOptionReply(socket, option, NBD_REP_ACK);
  return option === NBD_OPT_GO ? { name, device, flags, structured: false, contexts: [] } : null;
}

function answerList(ctx: NegotiationContext, data: Buffer): void {
  const { socket } = ctx;
  if (data.length !== 0) {
    sendOptionError(socket, NBD_OPT_LIST, NBD_REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
    return;
  }
  let entries: ExportEntry[];
  try {
    entries = ctx.source.list();
  } catch {
    entries = [];
  }
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const description = Buffer.from(entry.description ?? '', 'utf8').subarray(0, NBD_MAX_STRING);
    sendOptionReply(socket, NBD_OPT_LIST, NBD_REP_SERVER, Buffer.concat([u32(name.length), name, description]));
  }
  sendOptionReply(socket, NBD_OPT_LIST, NBD_REP_ACK);
}

/** What LIST/SET_META_CONTEXT carry: an export name and the queries. */
function parseContextRequest(data: Buffer): { name: string; queries: string[] } | null {
  if (data.length < 8) return null;
  const nameLength = data.readUInt32BE(0);
  if (nameLength > NBD_MAX_STRING || nameLength > data.length - 8) return null;
  const name = data.toString('utf8', 4, 4 + nameLength);
  let pos = 4 + nameLength;
  const count = data.readUInt32BE(pos);
  pos += 4;
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (pos + 4 > data.length) return null;
    const length = data.readUInt32BE(pos);
    pos += 4;
    if (length > NBD_MAX_STRING || length > data.length - pos) return null;
    queries.push(data.toString('utf8', pos, pos + length));
    pos += length;
  }
  return pos === data.length ? { name, queries } : null;
}

/**
 * NBD_OPT_LIST_META_CONTEXT lists the contexts the queries match (all of them
 * with no query); NBD_OPT_SET_META_CONTEXT selects the exactly named ones, gives
 * each an id, and replaces any earlier selection.
 */
function answerMetaContext(ctx: NegotiationContext, option: number, data: Buffer, haggled: Haggled): void {
  const { socket } = ctx;
  const set = option === NBD_OPT_SET_META_CONTEXT;
  if (set && !haggled.structured) {
    sendOptionError(socket, option, NBD_REP_ERR_INVALID, 'meta contexts need structured replies first');
    return;
  }
  const request = parseContextRequest(data);
  if (request === null) {
    sendOptionError(socket, option, NBD_REP_ERR_INVALID, 'malformed meta context request');
    return;
  }
  const found = lookUp(ctx, request.name);
  if (found === undefined) {
    sendOptionError(socket, option, NBD_REP_ERR_UNKNOWN, `no export named "${request.name}"`);
    return;
  }
  let offered: string[];
  try {
    offered = contextNamesFor(found.device);
  } catch {
    offered = [];
  }
  if (!set) {
    const names = request.queries.length === 0 ? offered : [...new Set(request.queries.flatMap((q) => matchQuery(offered, q)))];
    for (const name of names) sendOptionReply(socket, option, NBD_REP_META_CONTEXT, Buffer.concat([u32(0), Buffer.from(name, 'utf8')]));
    sendOptionReply(socket, option, NBD_REP_ACK);
    return;
  }
  const chosen = [...new Set(request.queries.filter((q) => offered.includes(q)))].slice(0, MAX_CONTEXTS);
  haggled.contextsFor = found.name;
  haggled.contexts = chosen.map((name, i) => ({ id: i + 1, name, since: sinceOf(name) }));
  for (const c of haggled.contexts) {
    sendOptionReply(socket, option, NBD_REP_META_CONTEXT, Buffer.concat([u32(c.id), Buffer.from(c.name, 'utf8')]));
  }
  sendOptionReply(socket, option, NBD_REP_ACK);
}

/**
 * Waits while more than `limit` reply bytes are queued on the socket: a client
 * that sends options without reading the replies stops being read (its socket
 * is paused once the reader's buffer is full) instead of filling our memory.
 */
async function replyRoom(socket: Socket, limit: number): Promise<void> {
  while (socket.writableLength > limit && !socket.destroyed) {
    await new Promise<void>((resolve) => {
      const done = (): void => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  }
}

/**
 * Runs the handshake. Resolves with the export chosen by NBD_OPT_GO or
 * NBD_OPT_EXPORT_NAME, or null when the client aborted (the socket is ended).
 * Rejects with NbdProtocolError (or the reader's error) when the connection must drop.
 */
export async function negotiate(ctx: NegotiationContext): Promise<NegotiatedExport | null> {
  const { socket, reader } = ctx;
  const greeting = Buffer.allocUnsafe(18);
  greeting.writeBigUInt64BE(NBD_INIT_MAGIC, 0);
  greeting.writeBigUInt64BE(NBD_OPTS_MAGIC, 8);
  greeting.writeUInt16BE(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES, 16);
  socket.write(greeting);

  const clientFlags = (await reader.read(4)).readUInt32BE(0);
  if ((clientFlags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) !== 0) {
    throw new NbdProtocolError(`unknown client flags 0x${clientFlags.toString(16)}`);
  }
  const fixed = (clientFlags & NBD_FLAG_C_FIXED_NEWSTYLE) !== 0;
  const haggled: Haggled = { structured: false, contextsFor: null, contexts: [] };
  const noZeroes = (clientFlags & NBD_FLAG_C_NO_ZEROES) !== 0;

  for (;;) {
    await replyRoom(socket, ctx.maxQueuedBytes);
    const header = await reader.read(NBD_OPTION_HEADER_SIZE);
    if (header.readBigUInt64BE(0) !== NBD_OPTS_MAGIC) throw new NbdProtocolError('bad option magic');
    const option = header.readUInt32BE(8);
    const length = header.readUInt32BE(12);
    if (length > ctx.maxOptionLength) throw new NbdProtocolError(`option ${option} too long (${length} bytes)`);
    const data = await reader.read(length);

    if (option === NBD_OPT_EXPORT_NAME) {
      // No way to answer an error here: an unknown export ends the session.
      if (length > NBD_MAX_STRING) throw new NbdProtocolError('export name too long');
      const found = lookUp(ctx, data.toString('utf8'));
      if (found === undefined || ctx.isShuttingDown()) throw new NbdProtocolError(`no export named "${data.toString('utf8')}"`);
      const flags = transmissionFlags(found.device, ctx.multiConn);
      const reply = Buffer.concat([u64(found.device.capacity), u16(flags), ...(noZeroes ? [] : [ZEROES_124])]);
      socket.write(reply);
      return { name: found.name, device: found.device, flags, structured: false, contexts: [] };
    }
    if (!fixed) throw new NbdProtocolError(`option ${option} without fixed newstyle`);
    if (option === NBD_OPT_ABORT) {
      sendOptionReply(socket, option, NBD_REP_ACK);
      socket.end();
      return null;
    }
    if (ctx.isShuttingDown()) {
      sendOptionError(socket, option, NBD_REP_ERR_SHUTDOWN, 'server is shutting down');
      continue;
    }
    switch (option) {
      case NBD_OPT_LIST:
        answerList(ctx, data);
        break;
      case NBD_OPT_INFO:
      case NBD_OPT_GO: {
        const chosen = answerInfo(ctx, option, data);
        if (chosen !== null) {
          // Contexts chosen for another export do not carry over (the protocol).
          const contexts = haggled.contextsFor === chosen.name ? haggled.contexts : [];
          return { ...chosen, structured: haggled.structured, contexts };
        }
        break;
      }
      case NBD_OPT_STRUCTURED_REPLY:
        if (data.length !== 0) {
          sendOptionError(socket, option, NBD_REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
        } else {
          haggled.structured = true;
          sendOptionReply(socket, option, NBD_REP_ACK);
        }
        break;
      case NBD_OPT_LIST_META_CONTEXT:
      case NBD_OPT_SET_META_CONTEXT:
        answerMetaContext(ctx, option, data, haggled);
        break;
      default:
        // STARTTLS, extended headers, anything newer.
        sendOptionError(socket, option, NBD_REP_ERR_UNSUP, `option ${option} not supported`);
    }
  }
}
