/** The Backup wizard's state and the Catalog (backup folder, chains, browse exports). */
import type { BlksnapApi } from '../../../app/shared/contract.js';
import type { ContractError } from '../../../app/shared/result.js';
import type { BackupCatalog, BackupCompression, BackupExport, BackupFormat, BackupKind, BackupPlan } from '../../../app/shared/types.js';
import { decodeBase64 } from '../../../app/shared/base64.js';
import { CBT_ACTIVE_TABLE } from '../../../app/shared/cbt.js';
import { defaultKind } from '../features/backup/plan-text.js';
import { changedSince, estimateStorage } from '../features/backup/storage-estimate.js';
import type { DeviceChange, StorageEstimate } from '../features/backup/storage-estimate.js';
import type { ActionError, GetState, SetState } from './types.js';

export const WIZARD_STEPS = ['devices', 'storage', 'snapshot', 'target', 'kind', 'run', 'verify', 'release'] as const;
export type WizardStep = (typeof WIZARD_STEPS)[number];

export interface WizardState {
  step: WizardStep;
  /** The snapshot the wizard created and took (released at the end). */
  snapshotId: string | null;
  plan: BackupPlan | null;
  kind: BackupKind;
  /** Make a new full backup where a chain cannot continue. */
  allowFull: boolean;
  format: BackupFormat;
  /** Compressed qcow2 clusters, or null for none. */
  compress: BackupCompression | null;
  backupJobId: string | null;
  /** One verify job per point the backup wrote. */
  verifyJobIds: string[];
  released: boolean;
}

export const INITIAL_WIZARD: WizardState = {
  step: 'devices',
  snapshotId: null,
  plan: null,
  kind: 'full',
  allowFull: false,
  format: 'qcow2',
  compress: null,
  backupJobId: null,
  verifyJobIds: [],
  released: false,
};

/** A point of the catalog as the requests name it. */
export interface PointRef {
  chainDir: string;
  pointId: string;
}

export function pointKey(ref: PointRef): string {
  return `${ref.chainDir}#${ref.pointId}`;
}

export interface StorageEstimateState {
  estimate: StorageEstimate;
  /** Where the change count came from, in words. */
  basis: string;
}

export interface BackupSlice {
  /** The backup folder (chain set) of the wizard and the Catalog. */
  backupDir: string;
  wizard: WizardState;
  planBusy: boolean;
  storageEstimate: StorageEstimateState | null;
  storageEstimateError: ContractError | null;
  catalog: BackupCatalog | null;
  catalogError: ContractError | null;
  /** Read-only NBD exports of points being browsed, by pointKey. */
  exports: Record<string, BackupExport>;
  setBackupDir(dir: string): void;
  setWizard(patch: Partial<WizardState>): void;
  resetWizard(): void;
  /**
   * Sizes the difference storage for the selected devices from their CBT maps: the
   * blocks changed since the last take (the live table where the driver has one).
   */
  loadStorageEstimate(): Promise<void>;
  /** backup.plan for the wizard's snapshot and devices into backupDir; picks the default kind. */
  loadPlan(): Promise<ActionError>;
  startBackup(): Promise<ActionError>;
  startVerify(): Promise<ActionError>;
  /** Destroys the wizard's snapshot (frees the difference storage). */
  releaseSnapshot(): Promise<ActionError>;
  refreshCatalog(): Promise<ActionError>;
  verifyPoint(ref: PointRef): Promise<ActionError>;
  restorePoint(ref: PointRef, target: string): Promise<ActionError>;
  browsePoint(ref: PointRef): Promise<ActionError>;
  stopBrowsing(ref: PointRef): Promise<ActionError>;
}

function notAbsolute(dir: string): ContractError | null {
  return dir.startsWith('/') ? null : { code: 'EINVAL', message: 'Give the backup folder as an absolute path (starting with /).' };
}

export function createBackupSlice(api: BlksnapApi, set: SetState, get: GetState): BackupSlice {
  const patchWizard = (patch: Partial<WizardState>): void => set((s) => ({ wizard: { ...s.wizard, ...patch } }));
  const failed = (what: string, error: ContractError): ContractError => {
    set({ notice: { kind: 'error', text: `${what}: ${error.code}: ${error.message}` } });
    return error;
  };

  return {
    backupDir: '',
    wizard: INITIAL_WIZARD,
    planBusy: false,
    storageEstimate: null,
    storageEstimateError: null,
    catalog: null,
    catalogError: null,
    exports: {},
    setBackupDir: (backupDir) => set({ backupDir }),
    setWizard: patchWizard,
    resetWizard: () => set({ wizard: INITIAL_WIZARD }),
    async loadStorageEstimate() {
      const { selectedDevices, devices, status } = get();
      const live = status?.capabilities.includes(CBT_ACTIVE_TABLE) ?? false;
      const changes: DeviceChange[] = [];
      for (const id of selectedDevices) {
        const r = await api.cbtMap({ device: id, table: live ? 'active' : 'snapshot' });
        if (!r.ok) {
          set({ storageEstimate: null, storageEstimateError: r.error });
          return;
        }
        // Live table: writes since the last take carry a newer number. Snapshot table: the last take's marks.
        const since = live ? r.value.changesNumber : Math.max(0, r.value.changesNumber - 1);
        changes.push({
          device: id,
          sizeBytes: devices.find((d) => d.id === id)?.sizeBytes ?? r.value.capacityBytes,
          blockSize: r.value.blockSize,
          changedBlocks: changedSince(decodeBase64(r.value.data), since),
        });
      }
      set({
        storageEstimate: {
          estimate: estimateStorage(changes),
          basis: live ? 'blocks written since the last snapshot was taken' : 'blocks the last snapshot found changed',
        },
        storageEstimateError: null,
      });
    },
    async loadPlan() {
      const dir = get().backupDir.trim();
      const bad = notAbsolute(dir);
      if (bad) return bad;
      const { snapshotId } = get().wizard;
      const devices = get().selectedDevices;
      set({ planBusy: true });
      const r = await api.backupPlan({
        dir,
        ...(snapshotId === null ? {} : { snapshotId }),
        ...(devices.length > 0 ? { devices } : {}),
      });
      set({ planBusy: false });
      if (!r.ok) {
        patchWizard({ plan: null });
        return r.error;
      }
      patchWizard({ plan: r.value, kind: defaultKind(r.value), allowFull: false });
      return null;
    },
    async startBackup() {
      const { wizard, backupDir, selectedDevices } = get();
      if (wizard.snapshotId === null) return { code: 'EINVAL', message: 'Take the snapshot first (step 3).' };
      const r = await api.backupStart({
        snapshotId: wizard.snapshotId,
        dir: backupDir.trim(),
        ...(selectedDevices.length > 0 ? { devices: selectedDevices } : {}),
        kind: wizard.kind,
        format: wizard.format,
        ...(wizard.compress !== null ? { compress: wizard.compress } : {}),
        ...(wizard.allowFull ? { allowFull: true } : {}),
      });
      if (!r.ok) return failed('The backup did not start', r.error);
      patchWizard({ backupJobId: r.value.jobId, verifyJobIds: [] });
      set({ notice: { kind: 'info', text: 'Backup started.' } });
      void get().refreshJobs();
      return null;
    },
    async startVerify() {
      const { wizard, jobs } = get();
      const backup = jobs.find((j) => j.jobId === wizard.backupJobId)?.result;
      if (backup?.kind !== 'backup') return { code: 'EINVAL', message: 'Run the backup first (step 6).' };
      // Each point in its own chain folder: point ids of one set repeat across its chains.
      const ids: string[] = [];
      for (const point of backup.points) {
        const r = await api.backupVerify({ dir: point.chainDir, point: point.pointId });
        if (!r.ok) return failed('The verification did not start', r.error);
        ids.push(r.value.jobId);
        patchWizard({ verifyJobIds: [...ids] });
      }
      void get().refreshJobs();
      return null;
    },
    async releaseSnapshot() {
      const { snapshotId } = get().wizard;
      if (snapshotId === null) return null;
      const error = await get().destroySnapshot(snapshotId);
      if (error === null) patchWizard({ released: true });
      return error;
    },
    async refreshCatalog() {
      const dir = get().backupDir.trim();
      const bad = notAbsolute(dir);
      if (bad) {
        set({ catalogError: bad });
        return bad;
      }
      const r = await api.backupCatalog({ dir });
      if (!r.ok) {
        set({ catalogError: r.error, catalog: null });
        return r.error;
      }
      set({ catalog: r.value, catalogError: null });
      return null;
    },
    async verifyPoint(ref) {
      const r = await api.backupVerify({ dir: ref.chainDir, point: ref.pointId });
      if (!r.ok) return failed('The verification did not start', r.error);
      void get().refreshJobs();
      return null;
    },
    async restorePoint(ref, target) {
      if (!target.startsWith('/')) return { code: 'EINVAL', message: 'Give the target as an absolute path (a new image file or a device).' };
      const r = await api.backupRestore({ dir: ref.chainDir, point: ref.pointId, target });
      if (!r.ok) return failed('The restore did not start', r.error);
      set({ notice: { kind: 'info', text: `Restoring to ${target}.` } });
      void get().refreshJobs();
      return null;
    },
    async browsePoint(ref) {
      const r = await api.backupExport({ dir: ref.chainDir, point: ref.pointId });
      if (!r.ok) return failed('Browse failed', r.error);
      set((s) => ({ exports: { ...s.exports, [pointKey(ref)]: r.value } }));
      return null;
    },
    async stopBrowsing(ref) {
      const key = pointKey(ref);
      const shown = get().exports[key];
      if (shown === undefined) return null;
      const r = await api.backupUnexport({ name: shown.name });
      if (!r.ok) return failed('Stop browsing failed', r.error);
      set((s) => {
        const { [key]: _gone, ...rest } = s.exports;
        return { exports: rest };
      });
      return null;
    },
  };
}
