/**
 * The change tracker of one device (seed 001, tracker.c): its CBT map, and while
 * the device is in a taken snapshot, its difference area and image.
 */
import { CbtMap } from './cbt-map.js';
import type { DiffArea } from './diff-area.js';
import type { ModuleParams } from './params.js';

/** What the tracker needs to know of the snapshot it belongs to. */
export interface TrackerSnapshotLink {
  readonly id: string;
}

export class Tracker {
  readonly cbt: CbtMap;
  /** The snapshot the device was added to (tracker->link), or null. */
  snapshot: TrackerSnapshotLink | null = null;
  /** Set while the snapshot is taken (tracker->diff_area + snapshot_is_taken). */
  diffArea: DiffArea | null = null;
  /** The image name while the snapshot is taken (tracker->snap_disk). */
  imageName: string | null = null;

  constructor(capacitySectors: number, params: ModuleParams) {
    this.cbt = new CbtMap(capacitySectors, params);
  }

  /**
   * tracker_take_snapshot(), called with the device's writes drained: reset the
   * CBT map if it is corrupted or the capacity changed, switch the tables, and
   * enable copy-on-write.
   */
  takeSnapshot(diffArea: DiffArea, capacitySectors: number): void {
    if (this.cbt.isCorrupted || this.cbt.deviceCapacitySectors !== capacitySectors) {
      this.cbt.reset(capacitySectors);
    }
    this.cbt.switch();
    this.diffArea = diffArea;
  }

  /** tracker_release_snapshot(), with writes drained: copy-on-write stops. */
  releaseSnapshot(): DiffArea | null {
    const da = this.diffArea;
    this.diffArea = null;
    this.imageName = null;
    return da;
  }
}
