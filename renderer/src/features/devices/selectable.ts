/** Whether a device row can be ticked for a snapshot, and why not (pure). */
import { escapeControlChars } from '../../../../app/shared/control-chars.js';
import type { DeviceEntry, DriverKind } from '../../../../app/shared/types.js';

export type Selectability =
  | { selectable: true }
  | { selectable: false; reason: 'empty' | 'needs-engine' | 'in-use'; text: string };

/**
 * Kernel driver: every block device with a size. Embedded engine: only engine devices;
 * a block device is snapshotted through the engine fronting it ("Open with the engine",
 * which adds it like an existing image), unless something else uses it (mounted,
 * swap, held by device-mapper or md: the helper's blockedBy), since the engine would
 * then write under that user's feet. A 0-byte device (an unset zram, an empty card
 * reader) has nothing to snapshot.
 */
export function selectability(device: DeviceEntry, driver: DriverKind | null): Selectability {
  if (device.sizeBytes <= 0) {
    return { selectable: false, reason: 'empty', text: 'Empty device (0 B): nothing to snapshot.' };
  }
  if (device.kind === 'block' && driver === 'embedded' && device.blockedBy.length > 0) {
    return {
      selectable: false,
      reason: 'in-use',
      text: `In use, so the engine cannot open it: ${device.blockedBy.join('; ')}.`,
    };
  }
  if (device.kind === 'block' && driver === 'embedded') {
    return {
      selectable: false,
      reason: 'needs-engine',
      text: 'Not directly with the embedded engine: open it with the engine first.',
    };
  }
  return { selectable: true };
}

/** The ids of the devices that can be ticked, in table order. */
export function selectableIds(devices: DeviceEntry[], driver: DriverKind | null): string[] {
  return devices.filter((d) => selectability(d, driver).selectable).map((d) => d.id);
}

/** Model, filesystem and mount points in one short line ("ext4 · mounted at /"), or "" (control characters escaped). */
export function deviceDetails(device: DeviceEntry): string {
  const parts: string[] = [];
  if (device.kind === 'block' && device.type !== 'disk') parts.push(device.type);
  if (device.model) parts.push(device.model);
  if (device.fstype) parts.push(device.fstype);
  if (device.mountpoints.length > 0) parts.push(`mounted at ${device.mountpoints.join(', ')}`);
  return escapeControlChars(parts.join(' · '));
}

/** The devices to list: a block device that an engine device already fronts (same path) is left out. */
export function visibleDevices(devices: DeviceEntry[]): DeviceEntry[] {
  const fronted = new Set(devices.filter((d) => d.kind === 'engine').map((d) => d.path));
  return devices.filter((d) => d.kind !== 'block' || !fronted.has(d.path));
}
