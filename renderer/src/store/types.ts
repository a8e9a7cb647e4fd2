/** The shape of the one store: its slices, and the helpers slices share. */
import type { ContractError } from '../../../app/shared/result.js';
import type { DevicesSlice } from './devices-slice.js';
import type { StorageSlice } from './storage-slice.js';
import type { SnapshotsSlice } from './snapshots-slice.js';
import type { EventsSlice } from './events-slice.js';
import type { HeatmapSlice } from './heatmap-slice.js';
import type { UiSlice } from './ui-slice.js';
import type { BackupSlice } from './backup-slice.js';
import type { JobsSlice } from './jobs-slice.js';
import type { WorkloadSlice } from './workload-slice.js';

export type AppState = UiSlice & DevicesSlice & WorkloadSlice & StorageSlice & SnapshotsSlice & EventsSlice & HeatmapSlice & JobsSlice & BackupSlice;

export type SetState = (partial: Partial<AppState> | ((state: AppState) => Partial<AppState>)) => void;
export type GetState = () => AppState;

/** An action's outcome for a form: null on success, else the error to show. */
export type ActionError = ContractError | null;
