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
