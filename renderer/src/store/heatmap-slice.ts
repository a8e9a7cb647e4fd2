import { CBT_ACTIVE_TABLE } from '../../../app/shared/cbt.js';
import type { BlksnapApi } from '../../../app/shared/contract.js';
import type { ContractError } from '../../../app/shared/result.js';
import type { AppStatus, CbtInfoEntry, CbtTable } from '../../../app/shared/types.js';
import { decodeBase64 } from '../../../app/shared/base64.js';
import type { GetState, SetState } from './types.js';

export interface HeatmapData {
  info: CbtInfoEntry;
  /** The table `map` holds: 'active' (live) or 'snapshot' (frozen at the last take). */
  table: CbtTable;
  /** The active change number: what writes made now get in the active table. */
  activeNumber: number;
  /** One byte per tracking block: the change number it was last written in. */
  map: Uint8Array;
  fetchedAt: number;
}

/** The heatmap's two views: the active table (live) or the table of the last snapshot. */
export type HeatmapView = 'live' | 'snapshot';

export const MAX_ZOOM = 1024;

export interface HeatmapSlice {
  heatmapDevice: string | null;
  heatmap: HeatmapData | null;
  heatmapError: ContractError | null;
  /** The view the user chose; null: the default (live when the helper supports it). */
  heatmapView: HeatmapView | null;
  /** Colour only the blocks changed since snapshot `sinceN`. */
  sinceMode: boolean;
  /** N of "changed since snapshot N"; null: the default (changes since the last take, see effectiveSinceN). */
  sinceN: number | null;
  /** Magnification: the view shows 1/zoom of the blocks. */
  zoom: number;
  /** First block of the view. */
  viewStart: number;
  setHeatmapDevice(device: string | null): void;
  setHeatmapView(view: HeatmapView): void;
  setSinceMode(on: boolean): void;
  setSinceN(n: number | null): void;
  setZoom(zoom: number): void;
  setViewStart(block: number): void;
  loadHeatmap(): Promise<void>;
}

/** The helper can read the active table (embedded engine). */
export function liveSupported(status: AppStatus | null): boolean {
  return status?.capabilities.includes(CBT_ACTIVE_TABLE) ?? false;
}

/** The view in effect: the chosen one, live by default; snapshot where live is not supported. */
export function effectiveView(chosen: HeatmapView | null, supported: boolean): HeatmapView {
  return supported ? (chosen ?? 'live') : 'snapshot';
}

export function tableOfView(view: HeatmapView): CbtTable {
  return view === 'live' ? 'active' : 'snapshot';
}

/** The newest change number the table can hold: the active number (live) or the last take's. */
export function newestNumber(data: Pick<HeatmapData, 'info' | 'table' | 'activeNumber'>): number {
  return data.table === 'active' ? data.activeNumber : data.info.changesNumber;
}

/**
 * The N in use: the chosen one, else the newest number - 1, i.e. changes since the
 * last snapshot. Live: blocks written since the last take (what an incremental backup
 * taken now would copy); snapshot table: the blocks the last take's increment held.
 */
export function effectiveSinceN(sinceN: number | null, data: Pick<HeatmapData, 'info' | 'table' | 'activeNumber'> | null): number {
  if (sinceN !== null) return sinceN;
  if (data === null) return 0;
  return Math.max(0, newestNumber(data) - 1);
}

export function createHeatmapSlice(api: BlksnapApi, set: SetState, get: GetState, now: () => number = Date.now): HeatmapSlice {
  let inFlight = false;
  let again = false;
  const table = (): CbtTable => tableOfView(effectiveView(get().heatmapView, liveSupported(get().status)));
  const slice: HeatmapSlice = {
    heatmapDevice: null,
    heatmap: null,
    heatmapError: null,
    heatmapView: null,
    sinceMode: false,
    sinceN: null,
    zoom: 1,
    viewStart: 0,
    setHeatmapDevice(device) {
      if (device === get().heatmapDevice) return;
      set({ heatmapDevice: device, heatmap: null, heatmapError: null, zoom: 1, viewStart: 0, sinceN: null });
    },
    setHeatmapView(view) {
      const before = table();
      set({ heatmapView: view });
      if (table() === before) return;
      // The default N differs between the tables; the zoom and position stay.
      set({ heatmap: null, heatmapError: null, sinceN: null });
      // Read the new table now, or right after a read under way (whose answer is dropped).
      if (inFlight) again = true;
      else void slice.loadHeatmap();
    },
    setSinceMode: (sinceMode) => set({ sinceMode }),
    setSinceN: (n) => set({ sinceN: n === null ? null : Math.max(0, Math.min(255, Math.floor(n))) }),
    setZoom: (zoom) => set({ zoom: Math.max(1, Math.min(MAX_ZOOM, Math.round(zoom))) }),
    setViewStart: (block) => set({ viewStart: Math.max(0, Math.floor(block)) }),
    async loadHeatmap() {
      const device = get().heatmapDevice;
      if (device === null || inFlight) return;
      inFlight = true;
      const wanted = table();
      try {
        const r = await api.cbtMap({ device, table: wanted });
        // A stale answer (the device or the view changed meanwhile) is dropped.
        if (get().heatmapDevice !== device || table() !== wanted) return;
        if (!r.ok) {
          set({ heatmapError: r.error });
          return;
        }
        const { encoding: _e, data, table: got, activeNumber, ...info } = r.value;
        let map: Uint8Array;
        try {
          map = decodeBase64(data);
        } catch (e) {
          set({ heatmapError: { code: 'PROTOCOL', message: 'The CBT map could not be decoded.', detail: String(e) } });
          return;
        }
        const previous = get().heatmap;
        // A new generation (map reset) invalidates the chosen N.
        const generationChanged = previous !== null && previous.info.generationId !== info.generationId;
        set({
          heatmap: { info, table: got, activeNumber, map, fetchedAt: now() },
          heatmapError: null,
          ...(generationChanged ? { sinceN: null } : {}),
        });
      } finally {
        inFlight = false;
        if (again) {
          again = false;
          void slice.loadHeatmap();
        }
      }
    },
  };
  return slice;
}
