/**
 * Random and mutated NBD client byte streams, and an independent model of what
 * a correct server must answer to them. The model parses the very bytes that
 * are sent (after mutation) the way the protocol defines, so a mutated length
 * that swallows the next frame, or a frame cut short, is predicted too.
 * Protocol values are written out here, not taken from engine/nbd.
 */

export const IHAVEOPT = 0x49484156454f5054n;
export const REQUEST_MAGIC = 0x25609513;
const OPT = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, STARTTLS: 5, INFO: 6, GO: 7, STRUCTURED_REPLY: 8, LIST_META: 9, SET_META: 10, EXTENDED: 11 };
export const REP = { ACK: 1, SERVER: 2, INFO: 3, META_CONTEXT: 4, ERR_UNSUP: 0x80000001, ERR_INVALID: 0x80000003, ERR_UNKNOWN: 0x80000006 };
const CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6, BLOCK_STATUS: 7 };
export const ERR = { OK: 0, EPERM: 1, EINVAL: 22, ENOSPC: 28, ENOTSUP: 95 };

/** What the fuzzed server offers (it must be configured the same way). */
export interface FuzzTarget {
  exportNames: string[];
  capacity: number;
  maxPayload: number;
  maxOptionLength: number;
}

type Random = () => number;
const int = (r: Random, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Random, items: readonly T[]): T => items[int(r, items.length)] as T;
const bytes = (r: Random, n: number): Buffer => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = int(r, 256);
  return b;
};

/** Flips a few random bytes of `b` in place (at least one). */
function mutate(r: Random, b: Buffer, from = 0): void {
  if (b.length <= from) return;
  const n = 1 + int(r, 3);
  for (let i = 0; i < n; i++) b[from + int(r, b.length - from)] = int(r, 256);
}

// ---------------------------------------------------------------- handshake

function option(option: number, data: Buffer, magic = IHAVEOPT, length = data.length): Buffer {
  const header = Buffer.alloc(16);
  header.writeBigUInt64BE(magic, 0);
  header.writeUInt32BE(option >>> 0, 8);
  header.writeUInt32BE(length >>> 0, 12);
  return Buffer.concat([header, data]);
}

/** LIST/SET_META_CONTEXT payload: export name, query count, queries. */
function contextPayload(name: Buffer, queries: string[]): Buffer {
  const parts = [Buffer.alloc(4), name, Buffer.alloc(4)];
  parts[0]!.writeUInt32BE(name.length, 0);
  parts[2]!.writeUInt32BE(queries.length, 0);
  for (const q of queries) {
    const text = Buffer.from(q, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(text.length, 0);
    parts.push(length, text);
  }
  return Buffer.concat(parts);
}

function infoPayload(name: Buffer, infos: number[]): Buffer {
  const out = Buffer.alloc(4 + name.length + 2 + 2 * infos.length);
  out.writeUInt32BE(name.length, 0);
  name.copy(out, 4);
  out.writeUInt16BE(infos.length, 4 + name.length);
  infos.forEach((t, i) => out.writeUInt16BE(t, 4 + name.length + 2 + 2 * i));
  return out;
}

export interface HandshakePlan {
  /** Bytes after the greeting: client flags and options. */
  stream: Buffer;
  frames: number;
  /** Expected final reply type of each option answered, in order. */
  replies: { option: number; final: number }[];
  /** What the server does after the last answered option. */
  ending: 'close' | 'abort' | 'transmission' | 'waiting';
}

/** A client's handshake: flags and 1-30 options, some malformed, some mutated. */
export function randomHandshake(r: Random, target: FuzzTarget): HandshakePlan {
  const flagsChoice = r();
  const flags = Buffer.alloc(4);
  flags.writeUInt32BE(flagsChoice < 0.85 ? 3 : flagsChoice < 0.9 ? 1 : flagsChoice < 0.95 ? 0 : int(r, 2 ** 32), 0);
  const parts: Buffer[] = [flags];
  const count = 1 + int(r, 30);
  const knownName = (): Buffer => Buffer.from(pick(r, target.exportNames));
  const someName = (): Buffer => (r() < 0.5 ? knownName() : r() < 0.5 ? Buffer.from('') : bytes(r, int(r, 40)));
  for (let i = 0; i < count; i++) {
    const k = r();
    let frame: Buffer;
    if (k < 0.2) frame = option(OPT.LIST, r() < 0.8 ? Buffer.alloc(0) : bytes(r, 1 + int(r, 64)));
    else if (k < 0.45) frame = option(OPT.INFO, infoPayload(someName(), Array.from({ length: int(r, 5) }, () => int(r, 5))));
    else if (k < 0.5) frame = option(OPT.GO, infoPayload(r() < 0.3 ? knownName() : bytes(r, 1 + int(r, 20)), []));
    else if (k < 0.6) frame = option(pick(r, [OPT.INFO, OPT.GO]), bytes(r, int(r, 40))); // malformed payload
    else if (k < 0.68) {
      // structured replies and meta contexts, well formed or mutated
      const queries = Array.from({ length: int(r, 4) }, () => pick(r, ['base:allocation', 'base:', 'blksnap:', 'blksnap:changed-since:0', 'qemu:dirty-bitmap:blksnap-1', 'x']));
      frame = option(pick(r, [OPT.STRUCTURED_REPLY, OPT.LIST_META, OPT.SET_META, OPT.SET_META]), r() < 0.2 ? Buffer.alloc(0) : contextPayload(someName(), queries));
      if (r() < 0.2) mutate(r, frame, 16);
    } else if (k < 0.75) frame = option(pick(r, [OPT.STARTTLS, OPT.STRUCTURED_REPLY, OPT.LIST_META, OPT.SET_META, OPT.EXTENDED, 0, 4, 12, 13]), bytes(r, int(r, 32)));
    else if (k < 0.85) frame = option(int(r, 2 ** 32), bytes(r, int(r, 32))); // unknown option
    else if (k < 0.88) frame = option(OPT.LIST, Buffer.alloc(0), BigInt(int(r, 2 ** 32))); // bad magic
    else if (k < 0.9) frame = option(OPT.INFO, Buffer.alloc(0), IHAVEOPT, target.maxOptionLength + 1 + int(r, 2 ** 31)); // huge length
    else if (k < 0.92) frame = option(OPT.EXPORT_NAME, someName());
    else if (k < 0.94) frame = option(OPT.ABORT, Buffer.alloc(0));
    else {
      // a valid option, mutated anywhere (header or payload)
      frame = option(pick(r, [OPT.LIST, OPT.INFO]), r() < 0.5 ? Buffer.alloc(0) : infoPayload(someName(), [0, 1, 2, 3]));
      mutate(r, frame);
    }
    if (r() < 0.05) frame = frame.subarray(0, int(r, frame.length)); // cut short: the stream desyncs
    parts.push(frame);
  }
  const stream = Buffer.concat(parts);
  if (r() < 0.05) mutate(r, stream, 0); // anywhere, the client flags included
  return { stream, frames: count, ...modelHandshake(stream, target) };
}

/** What a correct server answers to a handshake stream. */
export function modelHandshake(stream: Buffer, target: FuzzTarget): Omit<HandshakePlan, 'stream' | 'frames'> {
  const replies: HandshakePlan['replies'] = [];
  if (stream.length < 4) return { replies, ending: 'waiting' };
  const flags = stream.readUInt32BE(0);
  if ((flags & ~3) !== 0) return { replies, ending: 'close' };
  const fixed = (flags & 1) !== 0;
  const names = new Set(target.exportNames);
  let structured = false;
  let at = 4;
  for (;;) {
    if (stream.length - at < 16) return { replies, ending: 'waiting' };
    if (stream.readBigUInt64BE(at) !== IHAVEOPT) return { replies, ending: 'close' };
    const opt = stream.readUInt32BE(at + 8);
    const length = stream.readUInt32BE(at + 12);
    if (length > target.maxOptionLength) return { replies, ending: 'close' };
    if (stream.length - at - 16 < length) return { replies, ending: 'waiting' };
    const data = stream.subarray(at + 16, at + 16 + length);
    at += 16 + length;
    if (opt === OPT.EXPORT_NAME) {
      if (length > 4096 || !names.has(data.toString('utf8'))) return { replies, ending: 'close' };
      return { replies, ending: 'transmission' };
    }
    if (!fixed) return { replies, ending: 'close' };
    if (opt === OPT.ABORT) {
      replies.push({ option: opt, final: REP.ACK });
      return { replies, ending: 'abort' };
    }
    if (opt === OPT.LIST) {
      replies.push({ option: opt, final: length === 0 ? REP.ACK : REP.ERR_INVALID });
    } else if (opt === OPT.INFO || opt === OPT.GO) {
      const name = parseInfoName(data);
      if (name === null) replies.push({ option: opt, final: REP.ERR_INVALID });
      else if (!names.has(name)) replies.push({ option: opt, final: REP.ERR_UNKNOWN });
      else {
        replies.push({ option: opt, final: REP.ACK });
        if (opt === OPT.GO) return { replies, ending: 'transmission' };
      }
    } else if (opt === OPT.STRUCTURED_REPLY) {
      replies.push({ option: opt, final: length === 0 ? REP.ACK : REP.ERR_INVALID });
      if (length === 0) structured = true;
    } else if (opt === OPT.LIST_META || opt === OPT.SET_META) {
      const name = parseContextName(data);
      if ((opt === OPT.SET_META && !structured) || name === null) replies.push({ option: opt, final: REP.ERR_INVALID });
      else if (!names.has(name)) replies.push({ option: opt, final: REP.ERR_UNKNOWN });
      else replies.push({ option: opt, final: REP.ACK });
    } else replies.push({ option: opt, final: REP.ERR_UNSUP });
  }
}

/** The export name of a LIST/SET_META_CONTEXT payload (name, query count, queries), or null when malformed. */
function parseContextName(data: Buffer): string | null {
  if (data.length < 8) return null;
  const nameLength = data.readUInt32BE(0);
  if (nameLength > 4096 || nameLength > data.length - 8) return null;
  let at = 4 + nameLength;
  const count = data.readUInt32BE(at);
  at += 4;
  for (let i = 0; i < count; i++) {
    if (at + 4 > data.length) return null;
    const length = data.readUInt32BE(at);
    at += 4;
    if (length > 4096 || length > data.length - at) return null;
    at += length;
  }
  return at === data.length ? data.toString('utf8', 4, 4 + nameLength) : null;
}

function parseInfoName(data: Buffer): string | null {
  if (data.length < 6) return null;
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 6 || nameLength > 4096) return null;
  const count = data.readUInt16BE(4 + nameLength);
  if (data.length !== 4 + nameLength + 2 + 2 * count) return null;
  return data.toString('utf8', 4, 4 + nameLength);
}

// ------------------------------------------------------------- transmission

export interface Expected {
  type: number;
  error: number;
  /** Data bytes that follow a successful reply (READ). */
  dataLength: number;
  offset: number;
}

export interface TransmissionPlan {
  stream: Buffer;
  frames: number;
  /** Expected replies by cookie (cookies are made unique). */
  replies: Map<bigint, Expected>;
  /**
   * 'close': the server drops the connection (replies of requests still running
   * may be lost); 'disc': all replies, then the server closes; 'open': all
   * replies and the server waits for more; 'waiting': a frame is incomplete.
   */
  ending: 'close' | 'disc' | 'open' | 'waiting';
}

function request(type: number, { flags = 0, cookie = 0n, offset = 0n, length = 0, payload }: { flags?: number; cookie?: bigint; offset?: bigint; length?: number; payload?: Buffer } = {}, magic = REQUEST_MAGIC): Buffer {
  const header = Buffer.alloc(28);
  header.writeUInt32BE(magic >>> 0, 0);
  header.writeUInt16BE(flags, 4);
  header.writeUInt16BE(type, 6);
  header.writeBigUInt64BE(cookie, 8);
  header.writeBigUInt64BE(offset, 16);
  header.writeUInt32BE(length >>> 0, 24);
  return payload === undefined ? header : Buffer.concat([header, payload]);
}

/** 1-80 requests after a successful NBD_OPT_GO: valid, invalid, random and mutated. */
export function randomTransmission(r: Random, target: FuzzTarget, readOnly: boolean): TransmissionPlan {
  const { capacity, maxPayload } = target;
  const count = 1 + int(r, 80);
  const parts: Buffer[] = [];
  const aligned = (max: number): number => 512 * int(r, Math.max(1, Math.floor(max / 512)));
  const validRange = (maxLength: number): { offset: bigint; length: number } => {
    const length = 512 * (1 + int(r, maxLength / 512));
    return { offset: BigInt(aligned(capacity - length + 512)), length };
  };
  const hugeOffset = (): bigint => pick(r, [BigInt(capacity), BigInt(capacity - 512), 1n << 63n, (1n << 64n) - 512n, BigInt(int(r, 2 ** 32)) << 20n]);
  const hugeLength = (): number => pick(r, [0xffffffff, maxPayload + 512, maxPayload * 2, capacity + 512, 0x80000000]);
  for (let i = 0; i < count; i++) {
    const k = r();
    const last = i === count - 1;
    let frame: Buffer;
    if (k < 0.25) frame = request(CMD.READ, { ...validRange(64 * 1024), flags: r() < 0.1 ? 1 : 0 });
    else if (k < 0.35) {
      const { offset, length } = validRange(8 * 1024);
      frame = request(CMD.WRITE, { offset, length, payload: bytes(r, length), flags: r() < 0.2 ? 1 : 0 });
    } else if (k < 0.4) frame = request(CMD.FLUSH);
    else if (k < 0.47) frame = request(pick(r, [CMD.TRIM, CMD.WRITE_ZEROES]), { ...validRange(256 * 1024), flags: int(r, 4) | (r() < 0.2 ? 16 : 0) });
    else if (k < 0.57) frame = request(pick(r, [CMD.READ, CMD.TRIM, CMD.WRITE_ZEROES]), { offset: hugeOffset(), length: 512 * (1 + int(r, 8)) });
    else if (k < 0.65) frame = request(pick(r, [CMD.READ, CMD.TRIM, CMD.WRITE_ZEROES]), { offset: 0n, length: hugeLength() });
    else if (k < 0.7) frame = request(pick(r, [CMD.READ, CMD.WRITE_ZEROES, CMD.TRIM]), { offset: BigInt(int(r, capacity)), length: int(r, 9000) }); // unaligned, zero
    else if (k < 0.78) frame = request(pick(r, [CMD.CACHE, CMD.BLOCK_STATUS, 8, 9, 10, 11, 0x7fff, int(r, 65536)]), { offset: BigInt(int(r, capacity)), length: int(r, 65536) });
    else if (k < 0.84) frame = request(pick(r, [CMD.READ, CMD.FLUSH, CMD.TRIM]), { flags: 1 << int(r, 16), length: 512 }); // unknown flags
    else if (k < 0.98) {
      // a valid request, mutated in its header (the model re-reads it)
      frame = request(pick(r, [CMD.READ, CMD.FLUSH, CMD.TRIM]), validRange(16 * 1024));
      mutate(r, frame, 4);
    } else if (k < 0.99 && last) frame = request(CMD.READ, { length: 512 }, int(r, 2 ** 32)); // bad magic
    else if (last && k < 0.995) frame = request(CMD.WRITE, { length: maxPayload + 1 + int(r, 2 ** 20) }); // oversized write
    else frame = request(CMD.READ, { ...validRange(4096) });
    parts.push(frame);
  }
  const tail = r();
  if (tail < 0.3) parts.push(request(CMD.DISC));
  else if (tail < 0.32) parts.push(bytes(r, 28)); // random frame
  else if (tail < 0.34) parts.push(request(CMD.READ, { length: 512 }).subarray(0, 1 + int(r, 27))); // cut short
  const stream = Buffer.concat(parts);
  return { stream, frames: parts.length, ...modelTransmission(stream, target, readOnly) };
}

function expectedError(type: number, flags: number, offset: bigint, length: number, readOnly: boolean, target: FuzzTarget): number {
  const writes = type === CMD.WRITE || type === CMD.TRIM || type === CMD.WRITE_ZEROES;
  // BLOCK_STATUS needs a meta context, which the fuzzed connections never select.
  if (type !== CMD.READ && type !== CMD.FLUSH && type !== CMD.CACHE && !writes) return ERR.EINVAL;
  // FUA everywhere but CACHE; NO_HOLE and FAST_ZERO on WRITE_ZEROES.
  const allowed = type === CMD.CACHE ? 0 : 1 | (type === CMD.WRITE_ZEROES ? 2 | 16 : 0);
  if ((flags & ~allowed) !== 0) return ERR.EINVAL;
  if (writes && readOnly) return ERR.EPERM;
  if (type === CMD.FLUSH) return ERR.OK;
  if (length === 0) return ERR.EINVAL;
  if (type === CMD.READ && length > target.maxPayload) return ERR.EINVAL;
  if (offset + BigInt(length) > BigInt(target.capacity)) return type === CMD.WRITE || type === CMD.WRITE_ZEROES ? ERR.ENOSPC : ERR.EINVAL;
  if (offset % 512n !== 0n || length % 512 !== 0) return ERR.EINVAL;
  // A zero write of the engine is never faster than a write: FAST_ZERO is refused.
  if (type === CMD.WRITE_ZEROES && (flags & 16) !== 0) return ERR.ENOTSUP;
  return ERR.OK;
}

/**
 * What a correct server answers to a request stream. Rewrites cookies in place
 * (to 1, 2, 3, ...) so that every expected reply is told apart by its cookie.
 */
export function modelTransmission(stream: Buffer, target: FuzzTarget, readOnly: boolean): Omit<TransmissionPlan, 'stream' | 'frames'> {
  const replies = new Map<bigint, Expected>();
  let at = 0;
  let cookie = 0n;
  for (;;) {
    if (stream.length - at < 28) return { replies, ending: at === stream.length ? 'open' : 'waiting' };
    if (stream.readUInt32BE(at) !== REQUEST_MAGIC) return { replies, ending: 'close' };
    const flags = stream.readUInt16BE(at + 4);
    const type = stream.readUInt16BE(at + 6);
    const offset = stream.readBigUInt64BE(at + 16);
    const length = stream.readUInt32BE(at + 24);
    if (type === CMD.DISC) return { replies, ending: 'disc' };
    if (type === CMD.WRITE && length > target.maxPayload) return { replies, ending: 'close' };
    const payload = type === CMD.WRITE ? length : 0;
    if (stream.length - at - 28 < payload) return { replies, ending: 'waiting' };
    cookie++;
    stream.writeBigUInt64BE(cookie, at + 8);
    const error = expectedError(type, flags, offset, length, readOnly, target);
    replies.set(cookie, { type, error, dataLength: error === 0 && type === CMD.READ ? length : 0, offset: Number(offset) });
    at += 28 + payload;
  }
}
