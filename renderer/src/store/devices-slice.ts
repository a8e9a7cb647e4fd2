import type { BlksnapApi } from '../../../app/shared/contract.js';
import type { ContractError } from '../../../app/shared/result.js';
import type { DeviceEntry } from '../../../app/shared/types.js';
import { latestAnswer } from './latest-answer.js';
import type { ActionError, GetState, SetState } from './types.js';

export interface DevicesSlice {
  devices: DeviceEntry[];
  devicesLoaded: boolean;
  devicesError: ContractError | null;
  /** Ids of the devices ticked in the Devices table (kept in table order). */
  selectedDevices: string[];
  refreshDevices(): Promise<void>;
  toggleDevice(id: string): void;
  setSelectedDevices(ids: string[]): void;
  createLabDisk(name: string, sizeBytes: number): Promise<ActionError>;
  addImage(path: string): Promise<ActionError>;
  removeImage(id: string): Promise<ActionError>;
}

function sameDevices(a: DeviceEntry[], b: DeviceEntry[]): boolean {
  return a.length === b.length && JSON.stringify(a) === JSON.stringify(b);
}

export function createDevicesSlice(api: BlksnapApi, set: SetState, get: GetState): DevicesSlice {
  const listOrder = latestAnswer();
  return {
    devices: [],
    devicesLoaded: false,
    devicesError: null,
    selectedDevices: [],
    async refreshDevices() {
      const ticket = listOrder.begin();
      const r = await api.listDevices();
      // A slower answer to an earlier request (before a device was added or removed) is out of date.
      if (!listOrder.isCurrent(ticket)) return;
      if (!r.ok) {
        set({ devicesError: r.error, devicesLoaded: true });
        return;
      }
      const ids = new Set(r.value.map((d) => d.id));
      const { devices, selectedDevices } = get();
      const selected = selectedDevices.filter((id) => ids.has(id));
      set({
        // Keep the same array when nothing changed, so selectors do not re-render.
        devices: sameDevices(devices, r.value) ? devices : r.value,
        devicesLoaded: true,
        devicesError: null,
        selectedDevices: selected.length === selectedDevices.length ? selectedDevices : selected,
      });
    },
    toggleDevice(id) {
      const { selectedDevices, devices } = get();
      const next = selectedDevices.includes(id) ? selectedDevices.filter((x) => x !== id) : [...selectedDevices, id];
      const order = new Map(devices.map((d, i) => [d.id, i]));
      next.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
      set({ selectedDevices: next });
    },
    setSelectedDevices(ids) {
      set({ selectedDevices: [...ids] });
    },
    async createLabDisk(name, sizeBytes) {
      const r = await api.createLabDisk({ name, sizeBytes });
      if (!r.ok) return r.error;
      set({ notice: { kind: 'info', text: `Lab disk ${r.value.name} created.` } });
      await get().refreshDevices();
      return null;
    },
    async addImage(path) {
      const r = await api.addImage({ path });
      if (!r.ok) return r.error;
      const text = path.startsWith('/dev/')
        ? `${path} opened with the engine as ${r.value.name}: tick ${r.value.name} to snapshot it.`
        : `Image ${r.value.name} added.`;
      set({ notice: { kind: 'info', text } });
      await get().refreshDevices();
      return null;
    },
    async removeImage(id) {
      const r = await api.removeImage({ device: id });
      if (!r.ok) {
        set({ notice: { kind: 'error', text: `${r.error.code}: ${r.error.message}` } });
        return r.error;
      }
      set({ notice: { kind: 'info', text: `Device ${id} removed.` } });
      await get().refreshDevices();
      return null;
    },
  };
}
