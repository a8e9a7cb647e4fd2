import type { BlksnapApi, StorageForm } from '../../../app/shared/contract.js';
import type { ContractError } from '../../../app/shared/result.js';
import type { FilesystemEntry } from '../../../app/shared/types.js';
import { formatBytes } from '../../../app/shared/format.js';
import { describeStorage } from '../features/storage/storage-forms.js';
import type { ActionError, GetState, SetState } from './types.js';

/** What "Allocate" fixes: where the difference storage goes, in which form, and its limit. */
export interface StorageAllocation {
  /** The directory (new file, unnamed file), or the existing file or block device itself. */
  directory: string;
  limitBytes: number;
  /** Absent: a new file in `directory` (the only form the helper keeps across reloads). */
  form?: Exclude<StorageForm, 'new-file'>;
}

export interface StorageSlice {
  filesystems: FilesystemEntry[];
  filesystemsError: ContractError | null;
  storageDir: string;
  /** The limit typed by the user, in bytes; null: use the suggested limit. */
  storageLimitBytes: number | null;
  /** The form chosen on the Storage screen. */
  storageForm: StorageForm;
  allocation: StorageAllocation | null;
  refreshFilesystems(): Promise<void>;
  setStorageDir(dir: string): void;
  setStorageLimit(bytes: number | null): void;
  setStorageForm(form: StorageForm): void;
  /** Fixes the allocation used by snapshot create. EINVAL for an empty/relative path or a limit <= 0. */
  allocate(directory: string, limitBytes: number, form?: StorageForm): ActionError;
  /** Reads the allocation the helper keeps (a reload, a second window see the same). */
  loadAllocation(): Promise<void>;
}

export function createStorageSlice(api: BlksnapApi, set: SetState, get: GetState): StorageSlice {
  return {
    filesystems: [],
    filesystemsError: null,
    storageDir: '',
    storageLimitBytes: null,
    storageForm: 'new-file',
    allocation: null,
    async refreshFilesystems() {
      const r = await api.listFilesystems();
      if (r.ok) set({ filesystems: r.value, filesystemsError: null });
      else set({ filesystemsError: r.error });
    },
    setStorageDir: (storageDir) => set({ storageDir }),
    setStorageLimit: (storageLimitBytes) => set({ storageLimitBytes }),
    setStorageForm: (storageForm) => set({ storageForm }),
    allocate(directory, limitBytes, form = 'new-file') {
      if (!directory.startsWith('/')) {
        const what = form === 'existing-file' ? 'an existing file' : form === 'block-device' ? 'a block device' : 'a directory';
        return { code: 'EINVAL', message: `Choose ${what} (an absolute path) for the difference storage.` };
      }
      if (form === 'block-device' && !directory.startsWith('/dev/')) {
        return { code: 'EINVAL', message: 'A block device is under /dev (for example /dev/sdc).' };
      }
      if (!Number.isFinite(limitBytes) || limitBytes < 512) {
        return { code: 'EINVAL', message: 'The limit must be at least 512 bytes.' };
      }
      if (limitBytes > Number.MAX_SAFE_INTEGER) {
        // The contract carries sizes as safe integers: snapshot create would refuse it.
        return { code: 'EINVAL', message: `The limit must be at most ${formatBytes(Number.MAX_SAFE_INTEGER)}.` };
      }
      const limit = Math.floor(limitBytes / 512) * 512;
      if (form !== 'new-file') {
        // only a directory for new files is kept by the helper; this choice lasts until the page is reloaded
        set({ allocation: { directory, limitBytes: limit, form }, notice: { kind: 'info', text: `Difference storage: ${describeStorage(form, directory, limit)}.` } });
        return null;
      }
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
