import type { BlksnapApi } from '../../../app/shared/contract.js';
import type { ContractError } from '../../../app/shared/result.js';
import type { FilesystemEntry } from '../../../app/shared/types.js';
import { formatBytes } from '../../../app/shared/format.js';
import type { ActionError, GetState, SetState } from './types.js';

/** What "Allocate" fixes: where the difference storage file goes and its limit. */
export interface StorageAllocation {
  directory: string;
  limitBytes: number;
}

export interface StorageSlice {
  filesystems: FilesystemEntry[];
  filesystemsError: ContractError | null;
  storageDir: string;
  /** The limit typed by the user, in bytes; null: use the suggested limit. */
  storageLimitBytes: number | null;
  allocation: StorageAllocation | null;
  refreshFilesystems(): Promise<void>;
  setStorageDir(dir: string): void;
  setStorageLimit(bytes: number | null): void;
  /** Fixes the allocation used by snapshot create. EINVAL for an empty/relative directory or a limit <= 0. */
  allocate(directory: string, limitBytes: number): ActionError;
  /** Reads the allocation the helper keeps (a reload, a second window see the same). */
  loadAllocation(): Promise<void>;
}

export function createStorageSlice(api: BlksnapApi, set: SetState, get: GetState): StorageSlice {
  return {
    filesystems: [],
    filesystemsError: null,
    storageDir: '',
    storageLimitBytes: null,
    allocation: null,
    async refreshFilesystems() {
      const r = await api.listFilesystems();
      if (r.ok) set({ filesystems: r.value, filesystemsError: null });
      else set({ filesystemsError: r.error });
    },
    setStorageDir: (storageDir) => set({ storageDir }),
    setStorageLimit: (storageLimitBytes) => set({ storageLimitBytes }),
    allocate(directory, limitBytes) {
      if (!directory.startsWith('/')) {
        return { code: 'EINVAL', message: 'Choose a directory (an absolute path) for the difference storage.' };
      }
      if (!Number.isFinite(limitBytes) || limitBytes < 512) {
        return { code: 'EINVAL', message: 'The limit must be at least 512 bytes.' };
      }
      if (limitBytes > Number.MAX_SAFE_INTEGER) {
        // The contract carries sizes as safe integers: snapshot create would refuse it.
        return { code: 'EINVAL', message: `The limit must be at most ${formatBytes(Number.MAX_SAFE_INTEGER)}.` };
      }
      const limit = Math.floor(limitBytes / 512) * 512;
      set({
        allocation: { directory, limitBytes: limit },
        notice: { kind: 'info', text: `Difference storage allocated in ${directory}.` },
      });
      void api.setStorageAllocation({ directory, limitBytes: limit }).then((r) => {
        if (!r.ok) set({ notice: { kind: 'error', text: `The helper did not keep the allocation (${r.error.code}: ${r.error.message}); it lasts until this page is reloaded.` } });
      });
      return null;
    },
    async loadAllocation() {
      const r = await api.getStorageAllocation();
      // an allocation made in this page meanwhile is newer than the helper's answer
      if (r.ok && r.value !== null && get().allocation === null) set({ allocation: r.value });
    },
  };
}
