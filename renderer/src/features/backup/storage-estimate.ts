/**
 * Difference storage for a backup, sized from the predicted change (pure).
 *
 * While the snapshot is held, every write to a block copies the chunk that holds it
 * into the difference storage. The prediction: the writes during the backup look
 * like the writes since the last point, i.e. the blocks the CBT map marks as changed
 * since then. Each changed tracking block may copy a whole chunk (chunk-size
 * amplification), and the estimate leaves room for twice that. Never less than the
 * Storage screen's minimum, never more than the devices hold.
 */
import { DEFAULT_CHUNK_BYTES } from '../storage/cow-estimate.js';
import { MIN_SUGGESTED_BYTES } from '../storage/storage-advice.js';

const MiB = 1024 * 1024;
/** Room for a burst of writes beyond the prediction. */
export const ESTIMATE_HEADROOM = 2;

export interface DeviceChange {
  device: string;
  sizeBytes: number;
  /** Tracking block size in bytes. */
  blockSize: number;
  /** Tracking blocks changed since the last point. */
  changedBlocks: number;
}

export interface StorageEstimate {
  limitBytes: number;
  /** Bytes the changed blocks would copy (before headroom). */
  predictedBytes: number;
  changedBlocks: number;
}

/** Blocks of a CBT map whose change number is newer than `sinceNumber` (the 255 wrap resets the map). */
export function changedSince(map: Uint8Array, sinceNumber: number): number {
  let count = 0;
  for (const n of map) if (n > sinceNumber) count++;
  return count;
}

export function estimateStorage(devices: DeviceChange[], chunkBytes = DEFAULT_CHUNK_BYTES): StorageEstimate {
  let predicted = 0;
  let blocks = 0;
  for (const d of devices) {
    predicted += Math.min(d.sizeBytes, d.changedBlocks * Math.max(d.blockSize, chunkBytes));
    blocks += d.changedBlocks;
  }
  const total = devices.reduce((a, d) => a + d.sizeBytes, 0);
  const wanted = Math.ceil((predicted * ESTIMATE_HEADROOM) / MiB) * MiB;
  const capped = Math.min(wanted, Math.ceil(total / MiB) * MiB);
  return { limitBytes: Math.max(MIN_SUGGESTED_BYTES, capped), predictedBytes: predicted, changedBlocks: blocks };
}
