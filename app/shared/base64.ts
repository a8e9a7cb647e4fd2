/**
 * Standard base64 (RFC 4648, "+/", with "=" padding) for Uint8Array, without Buffer,
 * atob or btoa, so the same code runs in main, the helper client and the renderer.
 * Used for the CBT map in the contract (CbtMapEntry.data).
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

/**
 * Encodes bytes as base64 text. (Node code may use Buffer's 'base64' instead: the
 * output is identical.)
 */
export function encodeBase64(bytes: Uint8Array): string {
  const out: string[] = [];
  const chunk: number[] = [];
  const full = bytes.length - (bytes.length % 3);
  for (let i = 0; i < full; i += 3) {
    const n = ((bytes[i] ?? 0) << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    chunk.push(
      ALPHABET.charCodeAt(n >>> 18),
      ALPHABET.charCodeAt((n >>> 12) & 63),
      ALPHABET.charCodeAt((n >>> 6) & 63),
      ALPHABET.charCodeAt(n & 63),
    );
    // fromCharCode in slices, to keep its argument count small.
    if (chunk.length >= 32768) {
      out.push(String.fromCharCode(...chunk));
      chunk.length = 0;
    }
  }
  const rest = bytes.length - full;
  if (rest > 0) {
    const n = ((bytes[full] ?? 0) << 16) | (rest === 2 ? (bytes[full + 1] ?? 0) << 8 : 0);
    chunk.push(
      ALPHABET.charCodeAt(n >>> 18),
      ALPHABET.charCodeAt((n >>> 12) & 63),
      rest === 2 ? ALPHABET.charCodeAt((n >>> 6) & 63) : 61,
      61,
    );
  }
  if (chunk.length > 0) out.push(String.fromCharCode(...chunk));
  return out.join('');
}

function sextet(text: string, index: number): number {
  const code = text.charCodeAt(index);
  const value = code < 128 ? (DECODE[code] ?? -1) : -1;
  if (value < 0) throw new RangeError(`invalid base64 character at ${index}`);
  return value;
}

/** Decodes base64 text (padding required; no whitespace). Throws RangeError on malformed input. */
export function decodeBase64(text: string): Uint8Array {
  if (text.length % 4 !== 0) throw new RangeError('base64 length is not a multiple of 4');
  let padding = 0;
  if (text.endsWith('==')) padding = 2;
  else if (text.endsWith('=')) padding = 1;
  const outLength = (text.length / 4) * 3 - padding;
  const out = new Uint8Array(outLength);
  const fullQuads = padding > 0 ? text.length - 4 : text.length;
  let o = 0;
  for (let i = 0; i < fullQuads; i += 4) {
    const n = (sextet(text, i) << 18) | (sextet(text, i + 1) << 12) | (sextet(text, i + 2) << 6) | sextet(text, i + 3);
    out[o++] = n >>> 16;
    out[o++] = (n >>> 8) & 255;
    out[o++] = n & 255;
  }
  if (padding > 0) {
    const i = fullQuads;
    const n = (sextet(text, i) << 18) | (sextet(text, i + 1) << 12) | (padding === 1 ? sextet(text, i + 2) << 6 : 0);
    if (padding === 2 && text.charCodeAt(i + 2) !== 61) throw new RangeError('invalid base64 padding');
    out[o++] = n >>> 16;
    if (padding === 1) out[o] = (n >>> 8) & 255;
  }
  return out;
}
