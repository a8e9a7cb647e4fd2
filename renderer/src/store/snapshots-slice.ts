import type { BlksnapApi } from '../../../app/shared/contract.js';
import type { ContractError } from '../../../app/shared/result.js';
import type { SnapshotEntry } from '../../../app/shared/types.js';
import { formatBytes } from '../../../app/shared/format.js';
import { addSample } from '../features/storage/forecast.js';
import type { StorageSample } from '../features/storage/forecast.js';
import { storageFilePath } from '../features/storage/storage-advice.js';
import { latestAnswer } from './latest-answer.js';
import type { ActionError, GetState, SetState } from './types.js';

export interface SnapshotsSlice {
  snapshots: SnapshotEntry[];
  snapshotsLoaded: boolean;
  snapshotsError: ContractError | null;
  /** Id of the snapshot an action runs on ('new' while creating), or null. */
  snapshotBusy: string | null;
  /** The id of the last snapshot createSnapshot made (the Backup wizard takes it next). */
  createdSnapshotId: string | null;
  /** Recent storage fill samples per snapshot id (the forecast's input). */
  storageSamples: Record<string, StorageSample[]>;
  refreshSnapshots(): Promise<void>;
  /** Creates a snapshot of the selected devices with the allocated storage. */
  /** `writableImages`: export the images read-write (default read-only). */
  /** `name`: a name for people (trimmed; empty: none). */
  createSnapshot(options?: { writableImages?: boolean; name?: string }): Promise<ActionError>;
  takeSnapshot(id: string): Promise<ActionError>;
  destroySnapshot(id: string): Promise<ActionError>;
  /** Raises a held snapshot's storage limit by `addBytes` (the driver must offer STORAGE_GROW). */
  growStorage(id: string, addBytes: number): Promise<ActionError>;
}

function describe(error: ContractError): string {
  return `${error.code}: ${error.message}`;
}

export function createSnapshotsSlice(
  api: BlksnapApi,
  set: SetState,
  get: GetState,
  now: () => number = Date.now,
): SnapshotsSlice {
  const listOrder = latestAnswer();
  async function afterChange(): Promise<void> {
    await Promise.all([get().refreshSnapshots(), get().refreshDevices()]);
  }

  return {
    snapshots: [],
    snapshotsLoaded: false,
    snapshotsError: null,
    snapshotBusy: null,
    createdSnapshotId: null,
    storageSamples: {},
    async refreshSnapshots() {
      const ticket = listOrder.begin();
      const r = await api.listSnapshots();
      // A slower answer to an earlier request (before a create/destroy) is out of date.
      if (!listOrder.isCurrent(ticket)) return;
      if (!r.ok) {
        set({ snapshotsError: r.error, snapshotsLoaded: true });
        return;
      }
      const same = JSON.stringify(get().snapshots) === JSON.stringify(r.value);
      const previous = get().storageSamples;
      const storageSamples: Record<string, StorageSample[]> = {};
      const at = now();
      for (const s of r.value) {
        if (s.storage === null) continue;
        storageSamples[s.id] = addSample(previous[s.id] ?? [], { timeMs: at, bytes: s.storage.usedBytes ?? s.storage.allocatedBytes });
      }
      set({ snapshots: same ? get().snapshots : r.value, snapshotsLoaded: true, snapshotsError: null, storageSamples });
    },
    async createSnapshot(options = {}) {
      const { selectedDevices, allocation } = get();
      if (selectedDevices.length === 0) {
        return { code: 'EINVAL', message: 'Select at least one device on the Devices screen.' };
      }
      if (allocation === null) {
        return { code: 'EINVAL', message: 'Allocate difference storage first (Difference storage screen).' };
      }
      const name = options.name?.trim() ?? '';
      if (name.length > 64) return { code: 'EINVAL', message: `A name has at most 64 characters (this one has ${name.length}).` };
      set({ snapshotBusy: 'new' });
      const r = await api.snapshotCreate({
        devices: selectedDevices,
        // a new file gets a fresh name in the directory; the other forms name their object
        storagePath: allocation.form === undefined ? storageFilePath(allocation.directory, now()) : allocation.directory,
        ...(allocation.form !== undefined ? { storageForm: allocation.form } : {}),
        limitBytes: allocation.limitBytes,
        writableImages: options.writableImages === true,
        ...(name !== '' ? { name } : {}),
      });
      set({ snapshotBusy: null });
      if (!r.ok) {
        set({ notice: { kind: 'error', text: describe(r.error) } });
        return r.error;
      }
      set({ createdSnapshotId: r.value.snapshotId, notice: { kind: 'info', text: `Snapshot ${r.value.snapshotId} created.` } });
      await afterChange();
      return null;
    },
    async takeSnapshot(id) {
      set({ snapshotBusy: id });
      const r = await api.snapshotTake({ snapshotId: id });
      set({ snapshotBusy: null });
      if (!r.ok) {
        set({ notice: { kind: 'error', text: describe(r.error) } });
        await afterChange();
        return r.error;
      }
      set({ notice: { kind: 'info', text: `Snapshot ${id} taken.` } });
      await afterChange();
      return null;
    },
    async growStorage(id, addBytes) {
      set({ snapshotBusy: id });
      const r = await api.snapshotGrowStorage({ snapshotId: id, addBytes });
      set({ snapshotBusy: null });
      if (!r.ok) {
        set({ notice: { kind: 'error', text: describe(r.error) } });
        return r.error;
      }
      set({ notice: { kind: 'info', text: `The storage of snapshot ${id} may now hold ${formatBytes(addBytes)} more.` } });
      await get().refreshSnapshots();
      return null;
    },
    async destroySnapshot(id) {
      set({ snapshotBusy: id });
      const r = await api.snapshotDestroy({ snapshotId: id });
      set({ snapshotBusy: null });
      if (!r.ok) {
        set({ notice: { kind: 'error', text: describe(r.error) } });
        return r.error;
      }
      set({ notice: { kind: 'info', text: `Snapshot ${id} destroyed.` } });
      await afterChange();
      return null;
    },
  };
}
