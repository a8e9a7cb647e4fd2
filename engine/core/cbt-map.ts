/**
 * The change-block-tracking map of one device (seed 001, cbt_map.c): two byte
 * tables (read and write), one byte per tracking block holding the change number of
 * the last change of that block, the active and previous change numbers, and the
 * generation id that changes whenever the tables restart.
 */
import { randomUUID } from 'node:crypto';
import { BlksnapError } from '../abi/errno.js';
import { SECTOR_SHIFT } from '../abi/types.js';
import type { ModuleParams } from './params.js';

/** round_up(capacity, 2^(shift-9)) / 2^(shift-9): blocks of 2^shift bytes covering `capacitySectors`. */
function countByShift(capacitySectors: number, shift: number): number {
  const blk = 2 ** (shift - SECTOR_SHIFT);
  return Math.ceil(capacitySectors / blk);
}

/** cbt_map_calculate_block_size(): the tracking block shift and count for a capacity. */
export function calculateTrackingBlock(
  capacitySectors: number,
  params: Pick<ModuleParams, 'trackingBlockMinimumShift' | 'trackingBlockMaximumShift' | 'trackingBlockMaximumCount'>,
): { shift: number; count: number } {
  let shift = params.trackingBlockMinimumShift;
  let count = countByShift(capacitySectors, shift);
  while (count > params.trackingBlockMaximumCount) {
    if (shift >= params.trackingBlockMaximumShift) break;
    shift += 1;
    count = countByShift(capacitySectors, shift);
  }
  return { shift, count };
}

export class CbtMap {
  blkSizeShift = 0;
  blkCount = 0;
  deviceCapacitySectors = 0;
  readMap: Uint8Array = new Uint8Array(0);
  writeMap: Uint8Array = new Uint8Array(0);
  snapNumberActive = 1;
  snapNumberPrevious = 0;
  generationId = '';
  isCorrupted = false;

  constructor(
    capacitySectors: number,
    private readonly params: ModuleParams,
  ) {
    this.reset(capacitySectors);
  }

  /** cbt_map_reset(): new tables for a (possibly new) capacity, numbers restart, new generation. */
  reset(capacitySectors: number): void {
    this.deviceCapacitySectors = capacitySectors;
    const { shift, count } = calculateTrackingBlock(capacitySectors, this.params);
    this.blkSizeShift = shift;
    this.blkCount = count;
    // cbt_map_allocate()
    this.readMap = new Uint8Array(count);
    // Shared memory: the NBD server's receiving threads mark it too (EngineDevice.fileWriteStream).
    this.writeMap = new Uint8Array(new SharedArrayBuffer(count));
    this.snapNumberPrevious = 0;
    this.snapNumberActive = 1;
    this.generationId = randomUUID();
    this.isCorrupted = false;
  }

  /**
   * cbt_map_switch(), at snapshot take: previous <- active, active + 1. When the
   * active number would reach 256 it restarts at 1, the write table is zeroed and a
   * new generation id is made (the read table is left as it was, as in the module);
   * otherwise the read table becomes a copy of the write table.
   */
  switch(): void {
    this.snapNumberPrevious = this.snapNumberActive;
    this.snapNumberActive += 1;
    if (this.snapNumberActive === 256) {
      this.snapNumberActive = 1;
      this.writeMap.fill(0);
      this.generationId = randomUUID();
    } else {
      this.readMap.set(this.writeMap);
    }
  }

  /** _cbt_map_set(): raises blocks of the sector range to `num`; false if the range passes the table end. */
  private setIn(map: Uint8Array, sectorStart: number, sectorCount: number, num: number): boolean {
    if (sectorCount <= 0) return true;
    const div = 2 ** (this.blkSizeShift - SECTOR_SHIFT);
    const first = Math.floor(sectorStart / div);
    const last = Math.floor((sectorStart + sectorCount - 1) / div);
    const end = Math.min(last, this.blkCount - 1);
    for (let i = first; i <= end; i++) {
      if (map[i]! < num) map[i] = num;
    }
    return last < this.blkCount;
  }

  /** cbt_map_set(): a write to the original marks the write table with the active number. */
  set(sectorStart: number, sectorCount: number): void {
    if (this.isCorrupted) throw new BlksnapError('EINVAL', 'the CBT map is corrupted');
    if (!this.setIn(this.writeMap, sectorStart, sectorCount, this.snapNumberActive & 0xff)) {
      this.isCorrupted = true;
      throw new BlksnapError('EINVAL', 'block index is beyond the CBT map');
    }
  }

  /** cbt_map_set_both(): image writes and cbtdirty mark both tables. */
  setBoth(sectorStart: number, sectorCount: number): void {
    if (this.isCorrupted) throw new BlksnapError('EINVAL', 'the CBT map is corrupted');
    if (!this.setIn(this.writeMap, sectorStart, sectorCount, this.snapNumberActive & 0xff)) {
      throw new BlksnapError('EINVAL', 'block index is beyond the CBT map');
    }
    if (!this.setIn(this.readMap, sectorStart, sectorCount, this.snapNumberPrevious & 0xff)) {
      throw new BlksnapError('EINVAL', 'block index is beyond the CBT map');
    }
  }
}
