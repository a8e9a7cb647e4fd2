/**
 * zstd for qcow2 compressed clusters (compression type 1). Node 20's zlib has no
 * zstd, so this uses the WebAssembly build of the reference library from
 * @bokuweb/zstd-wasm (no native add-on, no install script). Its simple API compresses
 * one buffer into one frame and decompresses a buffer that is exactly whole frames;
 * a compressed cluster in a qcow2 file runs on to a sector boundary (and qemu may
 * write several frames), so the frames are delimited here from the frame format
 * (RFC 8878: header, blocks with 3-byte headers, optional checksum).
 */
import { compress, decompress, init } from '@bokuweb/zstd-wasm';
import { BlksnapError } from '../abi/errno.js';

const FRAME_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

let loading: Promise<void> | null = null;
let loaded = false;

/** Loads the WebAssembly module once (zstdCompress/zstdDecompress need it loaded). */
export function loadZstd(): Promise<void> {
  loading ??= init().then(() => {
    loaded = true;
  });
  return loading;
}

function requireLoaded(): void {
  if (!loaded) throw new BlksnapError('EINVAL', 'zstd is not loaded yet (loadZstd() first)');
}

/** One zstd frame of `data` (level 3 by default, what qemu uses). */
export function zstdCompress(data: Uint8Array, level = 3): Buffer {
  requireLoaded();
  const out = compress(data, level);
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** Length of the zstd (or skippable) frame at the start of data; throws when it is not one or is cut short. */
export function zstdFrameLength(data: Buffer): number {
  if (data.length < 8) throw new Error('too short for a zstd frame');
  const magic = data.readUInt32LE(0);
  if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) return 8 + data.readUInt32LE(4);
  if (magic !== FRAME_MAGIC) throw new Error(`no zstd frame magic (found ${magic.toString(16)})`);
  const descriptor = data[4]!;
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const checksum = (descriptor >> 2) & 1;
  const dictFlag = descriptor & 3;
  let at = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][dictFlag]! + [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
  for (;;) {
    if (at + 3 > data.length) throw new Error('the zstd frame is cut short');
    const header = data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16);
    const last = header & 1;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) throw new Error('a zstd block of the reserved type');
    at += 3 + (type === 1 ? 1 : size);
    if (last) break;
  }
  at += checksum ? 4 : 0;
  if (at > data.length) throw new Error('the zstd frame is cut short');
  return at;
}

/**
 * Decompresses the frames at the start of `data` until `size` bytes came out (what
 * follows, up to the sector boundary, is ignored); throws a plain Error when the data
 * is not that.
 */
export function zstdDecompress(data: Buffer, size: number): Buffer {
  requireLoaded();
  const parts: Buffer[] = [];
  let produced = 0;
  let at = 0;
  while (produced < size) {
    const rest = data.subarray(at);
    const length = zstdFrameLength(rest);
    const magic = rest.readUInt32LE(0);
    if (magic === FRAME_MAGIC) {
      const out = decompress(rest.subarray(0, length), { defaultHeapSize: size });
      parts.push(Buffer.from(out.buffer, out.byteOffset, out.byteLength));
      produced += out.byteLength;
    }
    at += length;
  }
  if (produced !== size) throw new Error(`it decompresses to ${produced} bytes, not ${size}`);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
