/**
 * A snapshot (seed 001, snapshot.c): its id, difference storage, event queue and
 * the devices added to it.
 */
import type { DiffStorage } from './diff-storage.js';
import type { EngineDevice } from './engine-device.js';
import type { EventQueue } from './event-queue.js';
import type { SnapshotImage } from './snapshot-image.js';

export class Snapshot {
  isTaken = false;
  /** Set once destroy has started: the snapshot no longer accepts operations. */
  destroyed = false;
  readonly devices: EngineDevice[] = [];
  readonly images: SnapshotImage[] = [];

  constructor(
    readonly id: string,
    readonly storage: DiffStorage,
    readonly events: EventQueue,
  ) {}
}
