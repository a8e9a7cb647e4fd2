/**
 * The compact encoding of binary payloads (CBT maps) in the JSON protocol:
 * "rle1-base64" = standard base64 (RFC 4648, with padding) of a run-length encoding.
 *
 * The run-length stream is a sequence of records, each starting with a tag byte:
 *   0x00 LEN BYTES...   a literal: LEN (unsigned LEB128, >= 1) bytes copied as they are
 *   0x01 LEN VALUE      a run: VALUE repeated LEN (unsigned LEB128, >= 1) times
 * Any other tag, a zero LEN, a truncated record or a decoded size different from the
 * announced one is an error. Pure functions: no Node.js Buffer.
 */

export const CBT_MAP_ENCODING = 'rle1-base64';

const TAG_LITERAL = 0x00;
const TAG_RUN = 0x01;
/** Shortest repeat the encoder turns into a run record (shorter ones stay literal). */
const MIN_RUN = 4;

class ByteSink {
  private buf: Uint8Array;
  length = 0;

  constructor(initial: number) {
    this.buf = new Uint8Array(Math.max(16, initial));
  }

  private ensure(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  byte(value: number): void {
    this.ensure(1);
    this.buf[this.length++] = value;
  }

  varint(value: number): void {
    let v = value;
    while (v >= 0x80) {
      this.byte((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.byte(v);
  }

  bytes(data: Uint8Array): void {
    this.ensure(data.length);
    this.buf.set(data, this.length);
    this.length += data.length;
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** Run-length encodes `data` (the record stream above). */
export function rleEncode(data: Uint8Array): Uint8Array {
  const out = new ByteSink(Math.min(data.length + 16, 1 << 16));
  let literalStart = 0;
  let i = 0;
  const flushLiteral = (end: number): void => {
    if (end > literalStart) {
      out.byte(TAG_LITERAL);
      out.varint(end - literalStart);
      out.bytes(data.subarray(literalStart, end));
    }
  };
  while (i < data.length) {
    const value = data[i] as number;
    let j = i + 1;
    while (j < data.length && data[j] === value) j++;
    if (j - i >= MIN_RUN) {
      flushLiteral(i);
      out.byte(TAG_RUN);
      out.varint(j - i);
      out.byte(value);
      literalStart = j;
    }
    i = j;
  }
  flushLiteral(data.length);
  return out.result();
}

/** Decodes a record stream; throws RangeError on malformed input or a size above maxLength. */
export function rleDecode(encoded: Uint8Array, maxLength: number): Uint8Array {
  const out = new ByteSink(Math.min(maxLength, 1 << 16));
  let pos = 0;
  const readVarint = (): number => {
    let value = 0;
    let scale = 1;
    for (let n = 0; n < 8; n++) {
      if (pos >= encoded.length) throw new RangeError('truncated length in CBT map encoding');
      const b = encoded[pos++] as number;
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (value === 0) throw new RangeError('zero-length record in CBT map encoding');
        return value;
      }
      scale *= 0x80;
    }
    throw new RangeError('length too long in CBT map encoding');
  };
  while (pos < encoded.length) {
    const tag = encoded[pos++];
    const len = readVarint();
    if (out.length + len > maxLength) throw new RangeError('CBT map encoding decodes to more bytes than announced');
    if (tag === TAG_LITERAL) {
      if (pos + len > encoded.length) throw new RangeError('truncated literal in CBT map encoding');
      out.bytes(encoded.subarray(pos, pos + len));
      pos += len;
    } else if (tag === TAG_RUN) {
      if (pos >= encoded.length) throw new RangeError('truncated run in CBT map encoding');
      const value = encoded[pos++] as number;
      for (let k = 0; k < len; k++) out.byte(value);
    } else {
      throw new RangeError(`unknown record tag ${String(tag)} in CBT map encoding`);
    }
  }
  return out.result();
}

const ALPHABET: string = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const DECODE = new Int16Array(128).fill(-1);
for (let k = 0; k < ALPHABET.length; k++) DECODE[ALPHABET.charCodeAt(k)] = k;

/** Standard base64 with padding. */
export function base64Encode(data: Uint8Array): string {
  const parts: string[] = [];
  let chunk = '';
  let i = 0;
  for (; i + 2 < data.length; i += 3) {
    const n = ((data[i] as number) << 16) | ((data[i + 1] as number) << 8) | (data[i + 2] as number);
    chunk += ALPHABET.charAt(n >> 18) + ALPHABET.charAt((n >> 12) & 63) + ALPHABET.charAt((n >> 6) & 63) + ALPHABET.charAt(n & 63);
    if (chunk.length >= 8192) {
      parts.push(chunk);
      chunk = '';
    }
  }
  const rest = data.length - i;
  if (rest === 1) {
    const n = (data[i] as number) << 16;
    chunk += ALPHABET.charAt(n >> 18) + ALPHABET.charAt((n >> 12) & 63) + '==';
  } else if (rest === 2) {
    const n = ((data[i] as number) << 16) | ((data[i + 1] as number) << 8);
    chunk += ALPHABET.charAt(n >> 18) + ALPHABET.charAt((n >> 12) & 63) + ALPHABET.charAt((n >> 6) & 63) + '=';
  }
  parts.push(chunk);
  return parts.join('');
}

/** Strict standard base64 (length a multiple of 4, padding only at the end); throws RangeError. */
export function base64Decode(text: string): Uint8Array {
  if (text.length % 4 !== 0) throw new RangeError('base64 length is not a multiple of 4');
  let pad = 0;
  if (text.endsWith('==')) pad = 2;
  else if (text.endsWith('=')) pad = 1;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    const last = i + 4 === text.length;
    let n = 0;
    for (let k = 0; k < 4; k++) {
      const c = text.charCodeAt(i + k);
      let v: number;
      if (c === 61 /* = */ && last && k >= 4 - pad) v = 0;
      else {
        v = c < 128 ? (DECODE[c] as number) : -1;
        if (v < 0) throw new RangeError('invalid base64 character');
      }
      n = (n << 6) | v;
    }
    out[o++] = (n >> 16) & 255;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return out;
}

/** Encodes a CBT map portion for the wire. */
export function encodeCbtMap(data: Uint8Array): string {
  return base64Encode(rleEncode(data));
}

/** Decodes a CBT map portion from the wire; it must decode to exactly `length` bytes. */
export function decodeCbtMap(text: string, length: number): Uint8Array {
  const bytes = rleDecode(base64Decode(text), length);
  if (bytes.length !== length) throw new RangeError(`CBT map encoding decodes to ${bytes.length} bytes, expected ${length}`);
  return bytes;
}
