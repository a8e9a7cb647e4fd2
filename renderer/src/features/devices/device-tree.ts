/**
 * The Devices screen as administrators know it (pure): engine devices, then each disk
 * with what sits on it (partitions, md, LVM, dm), as lsblk shows them. A disk of which
 * nothing can be used is one collapsed line with the reason; several such disks of one
 * type ("7 loop devices") share one line.
 */
import type { DeviceEntry, DriverKind } from '../../../../app/shared/types.js';
import { selectability } from './selectable.js';

export interface TreeRow {
  device: DeviceEntry;
  /** 0 for engine devices and disks, 1 for a partition, ... */
  depth: number;
  /** Parents other than the one it is drawn under (md RAID, LVM over several devices). */
  alsoOn: string[];
}

export type DeviceGroup =
  | { kind: 'rows'; key: string; rows: TreeRow[] }
  | { kind: 'collapsed'; key: string; summary: string; rows: TreeRow[] };

/** A device can be used: ticked for a snapshot, or opened with the engine. */
export function usable(device: DeviceEntry, driver: DriverKind | null): boolean {
  const s = selectability(device, driver);
  return s.selectable || s.reason === 'needs-engine';
}

/** Why a device cannot be used, in a few words ("empty (0 B)", "mounted at /"). */
function reasonOf(device: DeviceEntry, driver: DriverKind | null): string[] {
  const s = selectability(device, driver);
  if (s.selectable || s.reason === 'needs-engine') return [];
  if (s.reason === 'empty') return ['empty (0 B)'];
  return device.blockedBy;
}

function uniq(list: string[]): string[] {
  return [...new Set(list)];
}

const TYPE_NOUNS: Record<string, string> = {
  loop: 'loop device',
  disk: 'disk',
  rom: 'optical drive',
  part: 'partition',
  lvm: 'logical volume',
  crypt: 'encrypted volume',
};

function plural(n: number, type: string): string {
  const noun = TYPE_NOUNS[type] ?? `${type} device`;
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** The rows of one disk and everything on it, depth first, each device once. */
function subtree(root: DeviceEntry, byParent: Map<string, DeviceEntry[]>, placed: Set<string>): TreeRow[] {
  const rows: TreeRow[] = [];
  const walk = (d: DeviceEntry, depth: number, drawnUnder: string | null): void => {
    if (placed.has(d.id)) return;
    placed.add(d.id);
    rows.push({ device: d, depth, alsoOn: d.parents.filter((p) => p !== drawnUnder) });
    for (const child of byParent.get(d.path) ?? []) walk(child, depth + 1, d.path);
  };
  walk(root, 0, null);
  return rows;
}

/**
 * The groups to list: engine devices (one row each), then the block devices as trees.
 * `devices` is already without the block devices an engine device fronts.
 */
export function deviceGroups(devices: DeviceEntry[], driver: DriverKind | null): DeviceGroup[] {
  const groups: DeviceGroup[] = [];
  for (const d of devices.filter((x) => x.kind === 'engine')) {
    groups.push({ kind: 'rows', key: d.id, rows: [{ device: d, depth: 0, alsoOn: [] }] });
  }
  const block = devices.filter((x) => x.kind === 'block');
  const paths = new Set(block.map((d) => d.path));
  const byParent = new Map<string, DeviceEntry[]>();
  for (const d of block) {
    for (const p of d.parents) {
      const list = byParent.get(p) ?? [];
      list.push(d);
      byParent.set(p, list);
    }
  }
  const placed = new Set<string>();
  // A device whose parents are all absent (an engine device fronts them, or the list is flat) is a root.
  const roots = block.filter((d) => !d.parents.some((p) => paths.has(p)));
  const unusableByType = new Map<string, { rows: TreeRow[]; reasons: string[]; names: string[]; each: string[] }>();
  const order: (DeviceGroup | string)[] = [];
  for (const root of roots) {
    const rows = subtree(root, byParent, placed);
    if (rows.some((r) => usable(r.device, driver))) {
      order.push({ kind: 'rows', key: root.id, rows });
      continue;
    }
    const reasons = uniq(rows.flatMap((r) => reasonOf(r.device, driver)));
    const entry = unusableByType.get(root.type);
    if (entry) {
      entry.rows.push(...rows);
      entry.reasons.push(...reasons);
      entry.names.push(root.name);
      entry.each.push(reasons.join('; '));
    } else {
      unusableByType.set(root.type, { rows, reasons, names: [root.name], each: [reasons.join('; ')] });
      order.push(root.type);
    }
  }
  for (const item of order) {
    if (typeof item !== 'string') {
      groups.push(item);
      continue;
    }
    const g = unusableByType.get(item);
    if (!g) continue;
    const reasons = uniq(g.reasons);
    const sameReason = uniq(g.each).length === 1;
    let summary: string;
    if (g.names.length === 1) summary = `${g.names[0] ?? ''}: ${reasons.join('; ') || 'cannot be used'}`;
    else if (sameReason) summary = `${plural(g.names.length, item)} that cannot be used: ${g.each[0] || 'in use'}`;
    else if (g.names.length <= 3) summary = `${plural(g.names.length, item)} that cannot be used: ${g.names.map((n, i) => `${n} ${g.each[i] ?? ''}`).join('; ')}`;
    else summary = `${plural(g.names.length, item)} that cannot be used: ${reasons.slice(0, 2).join('; ')}${reasons.length > 2 ? ` and ${reasons.length - 2} more` : ''}`;
    groups.push({ kind: 'collapsed', key: `unusable-${item}`, summary, rows: g.rows });
  }
  // Devices in a cycle or under a parent that is itself placed elsewhere: never lost.
  const left = block.filter((d) => !placed.has(d.id));
  for (const d of left) groups.push({ kind: 'rows', key: d.id, rows: [{ device: d, depth: 0, alsoOn: d.parents }] });
  return groups;
}
