/** The one store of slices, created for an API (the real one in main.tsx, a fake in tests). */
import { createStore } from 'zustand/vanilla';
import type { StoreApi } from 'zustand/vanilla';
import type { BlksnapApi } from '../../../app/shared/contract.js';
import { createBackupSlice } from './backup-slice.js';
import { createDevicesSlice } from './devices-slice.js';
import { createEventsSlice } from './events-slice.js';
import { createHeatmapSlice } from './heatmap-slice.js';
import { createSnapshotsSlice } from './snapshots-slice.js';
import { createStorageSlice } from './storage-slice.js';
import type { AppState } from './types.js';
import { createJobsSlice } from './jobs-slice.js';
import { createUiSlice } from './ui-slice.js';
import { createWorkloadSlice } from './workload-slice.js';

export type AppStore = StoreApi<AppState>;

/** Where the page keeps what survives its reload (sessionStorage in the app; api.ts makes it). */
export interface SelectionMemory {
  load(): string[];
  save(ids: string[]): void;
}

export interface StoreOptions {
  now?: () => number;
  /** The Devices selection survives a reload through it. */
  selectionMemory?: SelectionMemory;
}

export function createAppStore(api: BlksnapApi, options: StoreOptions = {}): AppStore {
  const now = options.now ?? Date.now;
  const store = createStore<AppState>()((set, get) => ({
    ...createUiSlice(api, set, get),
    ...createDevicesSlice(api, set, get),
    ...createWorkloadSlice(api, set, get),
    ...createStorageSlice(api, set, get),
    ...createSnapshotsSlice(api, set, get, now),
    ...createEventsSlice(api, set, get),
    ...createHeatmapSlice(api, set, get, now),
    ...createJobsSlice(api, set, get),
    ...createBackupSlice(api, set, get),
  }));
  const memory = options.selectionMemory;
  if (memory) {
    const remembered = memory.load();
    if (remembered.length > 0) store.getState().setSelectedDevices(remembered);
    store.subscribe((state, previous) => {
      if (state.selectedDevices !== previous.selectedDevices) memory.save(state.selectedDevices);
    });
  }
  return store;
}
