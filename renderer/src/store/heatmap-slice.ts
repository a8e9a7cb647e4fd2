import type { BlksnapApi } from '../../../app/shared/contract.js';
import type { ContractError } from '../../../app/shared/result.js';
import type { CbtInfoEntry } from '../../../app/shared/types.js';
import { decodeBase64 } from '../../../app/shared/base64.js';
import type { GetState, SetState } from './types.js';

export interface HeatmapData {
  info: CbtInfoEntry;
  /** One byte per tracking block: the change number it was last written in. */
  map: Uint8Array;
  fetchedAt: number;
}

export const MAX_ZOOM = 1024;

export interface HeatmapSlice {
  heatmapDevice: string | null;
  heatmap: HeatmapData | null;
  heatmapError: ContractError | null;
  /** Colour only the blocks changed since snapshot `sinceN`. */
  sinceMode: boolean;
  /** N of "changed since snapshot N"; null: the previous change number (changes since the last take). */
  sinceN: number | null;
  /** Magnification: the view shows 1/zoom of the blocks. */
  zoom: number;
  /** First block of the view. */
  viewStart: number;
  setHeatmapDevice(device: string | null): void;
  setSinceMode(on: boolean): void;
  setSinceN(n: number | null): void;
  setZoom(zoom: number): void;
  setViewStart(block: number): void;
  loadHeatmap(): Promise<void>;
}

/** The N in use: the chosen one, else changes since the last snapshot (current - 1). */
export function effectiveSinceN(sinceN: number | null, info: CbtInfoEntry | null): number {
  if (sinceN !== null) return sinceN;
  return Math.max(0, (info?.changesNumber ?? 1) - 1);
}

export function createHeatmapSlice(api: BlksnapApi, set: SetState, get: GetState, now: () => number = Date.now): HeatmapSlice {
  let inFlight = false;
  return {
    heatmapDevice: null,
    heatmap: null,
    heatmapError: null,
    sinceMode: false,
    sinceN: null,
    zoom: 1,
    viewStart: 0,
    setHeatmapDevice(device) {
      if (device === get().heatmapDevice) return;
      set({ heatmapDevice: device, heatmap: null, heatmapError: null, zoom: 1, viewStart: 0, sinceN: null });
    },
    setSinceMode: (sinceMode) => set({ sinceMode }),
    setSinceN: (n) => set({ sinceN: n === null ? null : Math.max(0, Math.min(255, Math.floor(n))) }),
    setZoom: (zoom) => set({ zoom: Math.max(1, Math.min(MAX_ZOOM, Math.round(zoom))) }),
    setViewStart: (block) => set({ viewStart: Math.max(0, Math.floor(block)) }),
    async loadHeatmap() {
      const device = get().heatmapDevice;
      if (device === null || inFlight) return;
      inFlight = true;
      try {
        const r = await api.cbtMap({ device });
        if (get().heatmapDevice !== device) return;
        if (!r.ok) {
          set({ heatmapError: r.error });
          return;
        }
        const { encoding: _e, data, ...info } = r.value;
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
          heatmap: { info, map, fetchedAt: now() },
          heatmapError: null,
          ...(generationChanged ? { sinceN: null } : {}),
        });
      } finally {
        inFlight = false;
      }
    },
  };
}
