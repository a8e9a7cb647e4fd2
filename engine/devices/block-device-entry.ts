/** A block device as discovery reports it (lsblk or /sys/block). */
export interface BlockDeviceEntry {
  /** Kernel name, e.g. "sda", "sda1", "loop0", "nvme0n1". */
  name: string;
  /** Device node, e.g. "/dev/sda1". */
  path: string;
  /** "major:minor" */
  majMin: string;
  /** Capacity in bytes. */
  size: number;
  logicalBlockSize: number;
  physicalBlockSize: number;
  model: string | null;
  serial: string | null;
  /** lsblk TYPE: disk, part, loop, rom, lvm, crypt, raid1, ... */
  type: string;
  fstype: string | null;
  /** Filesystem label (lsblk LABEL), null when none. */
  label: string | null;
  mountpoints: string[];
  readOnly: boolean;
  children?: BlockDeviceEntry[];
}

/**
 * Every entry of a tree, parents before children, each device once: lsblk repeats
 * a device under each of its parents (md RAID, LVM over several disks).
 */
export function flattenDevices(entries: BlockDeviceEntry[]): BlockDeviceEntry[] {
  const out: BlockDeviceEntry[] = [];
  const seen = new Set<string>();
  const walk = (list: BlockDeviceEntry[]): void => {
    for (const e of list) {
      if (seen.has(e.path)) continue;
      seen.add(e.path);
      out.push(e);
      if (e.children) walk(e.children);
    }
  };
  walk(entries);
  return out;
}

/** A device of the tree with the paths of the devices it sits on (several for md RAID or LVM over several disks). */
export interface PlacedDevice {
  entry: BlockDeviceEntry;
  /** Paths of its parents in the tree, [] for a top-level device. */
  parents: string[];
}

/**
 * Every entry of a tree once, parents before children, each with all its parents:
 * lsblk repeats a device under each device it sits on.
 */
export function placeDevices(entries: BlockDeviceEntry[]): PlacedDevice[] {
  const out: PlacedDevice[] = [];
  const byPath = new Map<string, PlacedDevice>();
  const walk = (list: BlockDeviceEntry[], parent: string | null): void => {
    for (const e of list) {
      const known = byPath.get(e.path);
      if (known) {
        if (parent !== null && !known.parents.includes(parent)) known.parents.push(parent);
        continue;
      }
      const placed: PlacedDevice = { entry: e, parents: parent === null ? [] : [parent] };
      byPath.set(e.path, placed);
      out.push(placed);
      if (e.children) walk(e.children, e.path);
    }
  };
  walk(entries, null);
  return out;
}
