/** What the helper knows about the snapshots it manages (the driver is the truth for the rest). */
import type { SnapshotId } from '../abi/types.js';
import type { SnapshotSummary, StorageForm } from '../protocol/schemas.js';
import type { StorageIdentity } from './storage-ledger.js';

export interface SnapshotRecord {
  id: SnapshotId;
  /** Canonical device refs (embedded: engine device names; kernel: block-device paths). */
  devices: string[];
  taken: boolean;
  storagePath: string | null;
  limitSectors: number | null;
  /** Device and inode of the storage file the helper created (removed only while it is still that file). */
  storageIdentity?: StorageIdentity | null;
  /** The form of the difference storage (default `new-file`, the only form the helper removes). */
  storageForm?: StorageForm;
  /** Files storageGrow added to its storage (kernel driver), removed with it at destroy. */
  growFiles?: { path: string; identity: StorageIdentity | null }[];
  /** Created with writable images (snapshotCreate writableImages): its image exports accept writes. */
  writableImages?: boolean;
}

export class SnapshotBook {
  private readonly records = new Map<SnapshotId, SnapshotRecord>();

  add(record: SnapshotRecord): void {
    this.records.set(record.id, record);
  }

  get(id: SnapshotId): SnapshotRecord | undefined {
    return this.records.get(id);
  }

  ensure(id: SnapshotId): SnapshotRecord {
    let rec = this.records.get(id);
    if (!rec) {
      rec = { id, devices: [], taken: false, storagePath: null, limitSectors: null };
      this.records.set(id, rec);
    }
    return rec;
  }

  delete(id: SnapshotId): SnapshotRecord | undefined {
    const rec = this.records.get(id);
    this.records.delete(id);
    return rec;
  }

  /** The snapshot holding `device`, if any. */
  holderOf(device: string): SnapshotRecord | undefined {
    for (const rec of this.records.values()) if (rec.devices.includes(device)) return rec;
    return undefined;
  }

  all(): SnapshotRecord[] {
    return [...this.records.values()];
  }

  /** `imagesAlwaysWritable`: the driver's images accept writes whatever was asked (the kernel module's). */
  summary(id: SnapshotId, imagesAlwaysWritable = false): SnapshotSummary {
    const rec = this.records.get(id);
    return {
      id,
      devices: rec ? [...rec.devices] : [],
      taken: rec?.taken ?? false,
      storagePath: rec?.storagePath ?? null,
      limitSectors: rec?.limitSectors ?? null,
      writableImages: imagesAlwaysWritable || rec?.writableImages === true,
    };
  }
}
