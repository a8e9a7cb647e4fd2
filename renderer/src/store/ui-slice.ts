import type { BlksnapApi } from '../../../app/shared/contract.js';
import type { ContractError } from '../../../app/shared/result.js';
import type { AppStatus, HelperState, WorkloadPattern } from '../../../app/shared/types.js';
import type { GetState, SetState } from './types.js';

export const SCREENS = ['devices', 'storage', 'snapshots', 'events', 'heatmap', 'backup', 'catalog'] as const;
export type Screen = (typeof SCREENS)[number];

/** The Lab disk form's values, kept across screens. */
export interface LabDiskFormValues {
  /** What the user typed; null: suggest the next free name (nextFreeName). */
  name: string | null;
  size: string;
  unit: 'MiB' | 'GiB';
  /** Names the helper refused because their image file exists already (a lab disk removed earlier): never suggested. */
  fileTaken: string[];
}

/** The Write workload form's values, kept across screens. */
export interface WorkloadFormValues {
  /** The chosen device id; '' (or a device that is gone): the first engine device. */
  device: string;
  rate: string;
  pattern: WorkloadPattern;
}

export const DEFAULT_LAB_DISK_FORM: LabDiskFormValues = { name: null, size: '512', unit: 'MiB', fileTaken: [] };
export const DEFAULT_WORKLOAD_FORM: WorkloadFormValues = { device: '', rate: '4', pattern: 'random' };

export interface Notice {
  kind: 'info' | 'error';
  text: string;
}

export interface UiSlice {
  screen: Screen;
  status: AppStatus | null;
  statusError: ContractError | null;
  helper: HelperState;
  /** The last action's outcome, shown in the status line (role=status). */
  notice: Notice | null;
  /** A modal dialog is open: the rest of the page is hidden from assistive technology and inert. */
  modalOpen: boolean;
  /**
   * The control that opened the dialog: App gives it the focus back once the page is
   * no longer inert (focus() on an inert element does nothing, and the focus would
   * fall to <body>). Null: the dialog was opened without a focused control.
   */
  modalOpener: HTMLElement | null;
  /** Bumped by openScreen: App moves the keyboard focus to the new screen. */
  focusRequest: number;
  /** A reconnect asked by the user is under way. */
  reconnecting: boolean;
  labDiskForm: LabDiskFormValues;
  workloadForm: WorkloadFormValues;
  setLabDiskForm(patch: Partial<LabDiskFormValues>): void;
  setWorkloadForm(patch: Partial<WorkloadFormValues>): void;
  /** A dialog opens (`opener`: the control to focus again once it closes) or closes. */
  setModalOpen(open: boolean, opener?: HTMLElement | null): void;
  setScreen(screen: Screen): void;
  /** Opens a screen from a link inside a screen, and moves the focus to it. */
  openScreen(screen: Screen): void;
  setNotice(notice: Notice | null): void;
  setHelperState(helper: HelperState): void;
  refreshStatus(): Promise<void>;
  reconnect(): Promise<void>;
}

export function createUiSlice(api: BlksnapApi, set: SetState, get: GetState): UiSlice {
  return {
    screen: 'devices',
    status: null,
    statusError: null,
    helper: { state: 'starting' },
    notice: null,
    modalOpen: false,
    modalOpener: null,
    focusRequest: 0,
    reconnecting: false,
    labDiskForm: DEFAULT_LAB_DISK_FORM,
    workloadForm: DEFAULT_WORKLOAD_FORM,
    setLabDiskForm: (patch) => set((s) => ({ labDiskForm: { ...s.labDiskForm, ...patch } })),
    setWorkloadForm: (patch) => set((s) => ({ workloadForm: { ...s.workloadForm, ...patch } })),
    setModalOpen: (modalOpen, opener) => set(modalOpen ? { modalOpen, modalOpener: opener ?? null } : { modalOpen }),
    // the status line speaks of the last action: on another screen it would be stale
    setScreen: (screen) => set((s) => (s.screen === screen ? {} : { screen, notice: null })),
    openScreen: (screen) => set((s) => ({ screen, focusRequest: s.focusRequest + 1, ...(s.screen === screen ? {} : { notice: null }) })),
    setNotice: (notice) => set({ notice }),
    setHelperState: (helper) => set({ helper }),
    async refreshStatus() {
      const r = await api.getStatus();
      if (r.ok) set({ status: r.value, helper: r.value.helper, statusError: null });
      else set({ statusError: r.error });
    },
    async reconnect() {
      if (get().reconnecting) return;
      const before = get().helper;
      set({ helper: { state: 'starting' }, reconnecting: true });
      const r = await api.reconnect();
      if (!r.ok) {
        // Still not there: keep the reason in view (the banner stays, with Reconnect).
        set({
          reconnecting: false,
          statusError: r.error,
          helper: { state: before.state === 'connected' ? 'lost' : before.state, message: r.error.message },
          notice: { kind: 'error', text: `Reconnect failed: ${r.error.code}: ${r.error.message}` },
        });
        return;
      }
      set({ status: r.value, helper: r.value.helper, statusError: null, reconnecting: false });
      if (r.value.helper.state !== 'connected') {
        set({ notice: { kind: 'error', text: `Reconnect failed: ${r.value.helper.message ?? 'the helper is not running.'}` } });
        return;
      }
      set({ notice: { kind: 'info', text: 'Reconnected to the helper.' } });
      // A restarted helper has its own devices and snapshots: show them.
      const s = get();
      await Promise.all([s.refreshDevices(), s.refreshSnapshots(), s.refreshFilesystems()]);
    },
  };
}
