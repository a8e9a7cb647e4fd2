/**
 * "bsm64": the fast 64-bit block hash of the backup manifests (not cryptographic:
 * it detects corruption and wrong blocks, not tampering; the manifest's SHA-256 of
 * the whole image covers that).
 *
 * Definition: the input is read as little-endian 32-bit words, zero-padded to a
 * multiple of 16 bytes; four 32-bit lanes start at
 *   v1 = P1 + P2, v2 = P2, v3 = 0, v4 = -P1   (mod 2^32)
 * and each 16-byte stripe (w1..w4) does vi = rotl32(vi + wi * P2, 13) * P1 (mod 2^32)
 * (the round of xxHash32, whose primes P1..P5 it uses). With L = byte length mod 2^32:
 *   lo = mix(rotl(v1,1) + rotl(v2,7) + rotl(v3,12) + rotl(v4,18) + L)
 *   hi = mix((rotl(v1,5) * P3) ^ (rotl(v2,11) * P4) ^ (rotl(v3,17) * P5) ^ (rotl(v4,23) * P1) ^ lo)
 * where mix(h) = h ^= h >>> 15; h *= P2; h ^= h >>> 13; h *= P3; h ^= h >>> 16.
 * The hash is hi:lo, written as 16 hexadecimal digits (hi first).
 */
import { isZeroRange } from './image-writer.js';
const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const P4 = 0x27d4eb2f;
const P5 = 0x165667b1;

const rotl = (x: number, r: number): number => (x << r) | (x >>> (32 - r));

function mix(x: number): number {
  let h = x;
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Words of data as little-endian u32, zero-padded to 16 bytes (a view when possible). */
function words(data: Uint8Array): Uint32Array {
  if (littleEndian && data.byteOffset % 4 === 0 && data.length % 16 === 0) {
    return new Uint32Array(data.buffer, data.byteOffset, data.length / 4);
  }
  const padded = new Uint8Array(Math.ceil(data.length / 16) * 16);
  padded.set(data);
  const out = new Uint32Array(padded.length / 4);
  const view = new DataView(padded.buffer);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint32(i * 4, true);
  return out;
}

/** bsm64 of data, as 16 hex digits. */
export function blockHash(data: Uint8Array): string {
  const w = words(data);
  let v1 = (P1 + P2) | 0;
  let v2 = P2 | 0;
  let v3 = 0;
  let v4 = -P1 | 0;
  for (let i = 0; i < w.length; i += 4) {
    v1 = Math.imul(rotl((v1 + Math.imul(w[i]!, P2)) | 0, 13), P1);
    v2 = Math.imul(rotl((v2 + Math.imul(w[i + 1]!, P2)) | 0, 13), P1);
    v3 = Math.imul(rotl((v3 + Math.imul(w[i + 2]!, P2)) | 0, 13), P1);
    v4 = Math.imul(rotl((v4 + Math.imul(w[i + 3]!, P2)) | 0, 13), P1);
  }
  const lo = mix((rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18) + (data.length >>> 0)) | 0);
  const hi = mix(
    Math.imul(rotl(v1, 5), P3) ^ Math.imul(rotl(v2, 11), P4) ^ Math.imul(rotl(v3, 17), P5) ^ Math.imul(rotl(v4, 23), P1) ^ lo,
  );
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

/** bsm64 of all-zero blocks, by length (most blocks of a sparse disk). */
const zeroHashes = new Map<number, string>();

/**
 * blockHash(data), with all-zero blocks (found by a memcmp) answered from a cache
 * instead of hashed: the same value, much faster on sparse images.
 */
export function imageBlockHash(data: Buffer): string {
  return isZeroRange(data, 0, data.length) ? zeroBlockHash(data.length) : blockHash(data);
}

/** bsm64 of `length` zero bytes (cached). */
export function zeroBlockHash(length: number): string {
  let h = zeroHashes.get(length);
  if (h === undefined) {
    h = blockHash(new Uint8Array(length));
    zeroHashes.set(length, h);
  }
  return h;
}
