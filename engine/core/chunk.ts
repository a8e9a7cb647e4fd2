/**
 * Chunk states and chunk-size calculation (seed 001, chunk.h and
 * diff_area_calculate_chunk_size() in diff_area.c).
 *
 * The chunk is the copy-on-write unit. Its state lives in one byte per chunk
 * (a Uint8Array over the whole device): NEW -> IN_MEMORY <-> STORED, or FAILED.
 */
import { BlksnapError } from '../abi/errno.js';
import { SECTOR_SHIFT } from '../abi/types.js';
import type { ModuleParams } from './params.js';

/** No data is associated with the chunk: the image reads it from the original. */
export const CHUNK_NEW = 0;
/** The chunk's data is in a memory buffer (waiting in the store queue). */
export const CHUNK_IN_MEMORY = 1;
/** The chunk's data is in the difference storage. */
export const CHUNK_STORED = 2;
/** Processing the chunk failed (the snapshot image is corrupted). */
export const CHUNK_FAILED = 3;

export type ChunkState = typeof CHUNK_NEW | typeof CHUNK_IN_MEMORY | typeof CHUNK_STORED | typeof CHUNK_FAILED;

function countByShift(capacitySectors: number, shift: number): number {
  return Math.ceil(capacitySectors / 2 ** (shift - SECTOR_SHIFT));
}

/**
 * The chunk shift grows from chunk_minimum_shift while the chunk count exceeds
 * 2^chunk_maximum_count_shift or the chunk is smaller than the minimum I/O size;
 * beyond chunk_maximum_shift the module refuses with EFAULT.
 */
export function calculateChunkSize(
  capacitySectors: number,
  minIoBytes: number,
  params: Pick<ModuleParams, 'chunkMinimumShift' | 'chunkMaximumCountShift' | 'chunkMaximumShift'>,
): { shift: number; count: number } {
  const minIoSectors = minIoBytes >> SECTOR_SHIFT;
  const maxCount = 2 ** params.chunkMaximumCountShift;
  let shift = params.chunkMinimumShift;
  let count = countByShift(capacitySectors, shift);
  while (count > maxCount || 2 ** (shift - SECTOR_SHIFT) < minIoSectors) {
    shift++;
    count = countByShift(capacitySectors, shift);
  }
  if (shift > params.chunkMaximumShift) {
    throw new BlksnapError('EFAULT', 'the maximum allowable chunk size has been reached');
  }
  return { shift, count };
}
