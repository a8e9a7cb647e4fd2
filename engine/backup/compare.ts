/**
 * Compare a backup point's image with the snapshot image it was taken from (while
 * the snapshot is still held), byte for byte, and say where they differ.
 */
import { BlksnapError } from '../abi/errno.js';
import { readerOf } from './backup-point.js';
import type { ImageReader } from './backup-point.js';
import { readImage } from './image-source.js';
import type { ImageSource } from './image-source.js';
import { checkCancelled } from './progress.js';
import type { JobOptions } from './progress.js';

const CHUNK = 4 * 1024 * 1024;
const SECTOR = 512;
/** Differing ranges named in the message; the rest are counted. */
const MAX_RANGES = 3;

export interface CompareResult {
  /** Bytes compared (the image size when equal). */
  bytes: number;
  /** Differing byte ranges [start, end), in 512-byte units, merged; at most MAX_RANGES. */
  ranges: [number, number][];
  /** Differing 512-byte sectors in all. */
  differingSectors: number;
}

/** Compares `image` (a backup point) with `snapshot` (the snapshot image), both `size` bytes. */
export async function compareImages(image: ImageSource, snapshot: ImageReader, opts: JobOptions = {}): Promise<CompareResult> {
  const size = image.virtualSize;
  const readSnapshot = readerOf(snapshot);
  const ranges: [number, number][] = [];
  let differingSectors = 0;
  let open: [number, number] | null = null;
  opts.onProgress?.({ done: 0, total: size });
  for (let at = 0; at < size; at += CHUNK) {
    checkCancelled(opts.signal, 'comparison with the snapshot');
    const len = Math.min(CHUNK, size - at);
    const [a, b] = await Promise.all([readImage(image, at, len), readSnapshot(at, len)]);
    if (b.length !== len) throw new BlksnapError('EIO', `the snapshot image returned ${b.length} bytes at ${at}, not ${len}`);
    if (!a.equals(b)) {
      for (let s = 0; s < len; s += SECTOR) {
        const e = Math.min(s + SECTOR, len);
        if (a.compare(b, s, e, s, e) === 0) continue;
        differingSectors++;
        if (open && open[1] === at + s) open[1] = at + e;
        else {
          open = [at + s, at + e];
          if (ranges.length < MAX_RANGES) ranges.push(open);
        }
      }
    }
    opts.onProgress?.({ done: at + len, total: size });
  }
  return { bytes: size, ranges, differingSectors };
}

/** "bytes 0-511 and 4096-8191 (and 10 more differing sectors)", or null when equal. */
export function describeDifferences(r: CompareResult): string | null {
  if (r.differingSectors === 0) return null;
  const named = r.ranges.map(([s, e]) => `${s}-${e - 1}`);
  const namedSectors = r.ranges.reduce((n, [s, e]) => n + (e - s) / SECTOR, 0);
  const more = r.differingSectors - namedSectors;
  const list = named.length > 1 ? `${named.slice(0, -1).join(', ')} and ${named[named.length - 1]!}` : named[0]!;
  return `bytes ${list}${more > 0 ? ` (and ${more} more differing 512-byte sectors)` : ''}`;
}
