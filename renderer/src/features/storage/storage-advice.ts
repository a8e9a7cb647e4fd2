/** Difference-storage advice: the suggested limit and the warnings (pure). */
import type { DeviceEntry, FilesystemEntry, StorageGauge } from '../../../../app/shared/types.js';
import { COW_HEADROOM, chunkCount, expectedCopiedBytes } from './cow-estimate.js';
import type { WritePlan } from './cow-estimate.js';

const MiB = 1024 * 1024;
/** The suggested limit is this share of the selected devices' total size. */
export const SUGGESTED_SHARE = 0.15;
/** Never suggest less than this. */
export const MIN_SUGGESTED_BYTES = 64 * MiB;
/** A filesystem with less than this share free after the limit is "low". */
export const LOW_FREE_SHARE = 0.1;

/**
 * 15% of the selected devices' total size, rounded up to a MiB, at least 64 MiB (0
 * with no device). With a write plan, at least the chunks those writes are expected
 * to copy (copy-on-write amplification) with headroom, but never more than the
 * devices' chunks can hold: each chunk is copied at most once.
 */
export function suggestedLimitBytes(sizes: number[], plan?: WritePlan): number {
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total <= 0) return 0;
  const share = Math.ceil((total * SUGGESTED_SHARE) / MiB) * MiB;
  let wanted = share;
  if (plan !== undefined) {
    const copied = Math.ceil((expectedCopiedBytes(sizes, plan) * COW_HEADROOM) / MiB) * MiB;
    const ceiling = Math.ceil((chunkCount(sizes, plan.chunkBytes) * plan.chunkBytes) / MiB) * MiB;
    wanted = Math.max(share, Math.min(copied, ceiling));
  }
  return Math.max(MIN_SUGGESTED_BYTES, wanted);
}

function isUnder(dir: string, mountpoint: string): boolean {
  if (mountpoint === '/') return dir.startsWith('/');
  return dir === mountpoint || dir.startsWith(`${mountpoint}/`);
}

/** The filesystem a directory is on: the longest mount point that contains it. */
export function filesystemFor(dir: string, filesystems: FilesystemEntry[]): FilesystemEntry | null {
  let best: FilesystemEntry | null = null;
  for (const fs of filesystems) {
    if (isUnder(dir, fs.mountpoint) && (best === null || fs.mountpoint.length > best.mountpoint.length)) best = fs;
  }
  return best;
}

export type StorageWarningCode =
  | 'not-absolute'
  | 'unknown-filesystem'
  | 'on-snapshotted-device'
  | 'limit-exceeds-free'
  | 'low-free-space';

export interface StorageWarning {
  code: StorageWarningCode;
  text: string;
}

/** Warnings for putting difference storage of `limitBytes` in `dir` while snapshotting `selected`. */
export function storageWarnings(
  dir: string,
  limitBytes: number,
  filesystems: FilesystemEntry[],
  selected: DeviceEntry[],
): StorageWarning[] {
  const warnings: StorageWarning[] = [];
  if (dir === '') return warnings;
  if (!dir.startsWith('/')) {
    warnings.push({ code: 'not-absolute', text: 'The directory must be an absolute path (starting with /).' });
    return warnings;
  }
  const fs = filesystemFor(dir, filesystems);
  if (fs === null) {
    warnings.push({ code: 'unknown-filesystem', text: 'The directory is not on a listed filesystem; free space cannot be checked.' });
    return warnings;
  }
  const hit = selected.find(
    (d) => (fs.source !== '' && fs.source === d.path) || d.mountpoints.includes(fs.mountpoint),
  );
  if (hit) {
    warnings.push({
      code: 'on-snapshotted-device',
      text: `The storage is on ${hit.name}, which is being snapshotted: its own writes would fill the storage. Choose another filesystem.`,
    });
  }
  if (limitBytes > fs.freeBytes) {
    warnings.push({
      code: 'limit-exceeds-free',
      text: `The limit is larger than the free space on ${fs.mountpoint}; the snapshot may overflow before reaching it.`,
    });
  } else if (fs.totalBytes > 0 && fs.freeBytes - limitBytes < fs.totalBytes * LOW_FREE_SHARE) {
    warnings.push({
      code: 'low-free-space',
      text: `Little free space would be left on ${fs.mountpoint} once the storage reaches its limit.`,
    });
  }
  return warnings;
}

/** Share of the limit in use (used when known, else allocated), 0..1. */
export function gaugeFill(gauge: StorageGauge): number {
  if (gauge.limitBytes <= 0) return 0;
  const value = gauge.usedBytes ?? gauge.allocatedBytes;
  return Math.min(1, Math.max(0, value / gauge.limitBytes));
}

/** A gauge at or above this share of its limit is shown as a warning. */
export const GAUGE_WARN_SHARE = 0.8;

/** The storage file path for a new snapshot in `dir` (the driver creates it, O_EXCL). */
export function storageFilePath(dir: string, now: number): string {
  const base = dir.endsWith('/') ? dir.slice(0, -1) : dir;
  return `${base}/blksnap-diff-${now}.img`;
}
