/**
 * What else uses a block device: file systems mounted from it, swap on it, device-mapper
 * or md devices stacked on it (sysfs holders), for the device itself, its partitions
 * and the whole disk it is a partition of. The embedded engine refuses to front a
 * device in use, and devices.list says why, both from usesOf() here.
 *
 * These are the users that the kernel also knows as exclusive holders, so an O_EXCL
 * open fails (EBUSY) while any of them exists; this module names them. Sources:
 * /proc/self/mountinfo (matched by the device number of the mount, and by its source
 * device, since btrfs reports an anonymous device number), /proc/swaps and
 * /sys/dev/block/MAJ:MIN (holders/, partitions, dm/name, dm/suspended).
 */
import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { splitDevT } from '../abi/dev-t.js';

/** Octal escapes of mountinfo and /proc/swaps fields (\040 space, \011 tab, \012 newline, \134 backslash). */
export function unescapeProcField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export interface MountinfoEntry {
  /** "major:minor" of the mounted file system (an anonymous 0:N for btrfs and pseudo file systems). */
  majMin: string;
  mountPoint: string;
  fsType: string;
  /** The mount source ("/dev/sda1", "tmpfs", ...). */
  source: string;
}

/** The lines of a mountinfo text (proc(5)); malformed lines are skipped. */
export function parseMountinfoEntries(text: string): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    const majMin = fields[2];
    const mountPoint = fields[4];
    if (!majMin || !mountPoint || !/^\d+:\d+$/.test(majMin)) continue;
    out.push({
      majMin,
      mountPoint: unescapeProcField(mountPoint),
      fsType: sep > 0 ? (fields[sep + 1] ?? '') : '',
      source: sep > 0 ? unescapeProcField(fields[sep + 2] ?? '') : '',
    });
  }
  return out;
}

/** The block-device paths in /proc/swaps (files on a file system are left out by the caller). */
export function parseSwaps(text: string): string[] {
  return text
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name !== '')
    .map(unescapeProcField);
}

/** Mounts and swap areas, keyed by "major:minor" of the block device. */
export interface SystemUsage {
  mounts: Map<string, string[]>;
  swaps: Set<string>;
}

export interface UsageSources {
  /** mountinfo text; default /proc/self/mountinfo. */
  mountinfo?: string;
  /** /proc/swaps text; default /proc/swaps. */
  swaps?: string;
  /** Default "/sys". */
  sysRoot?: string;
}

function majMinOfBlockDevice(path: string): string | null {
  if (!path.startsWith('/')) return null;
  try {
    const st = statSync(path);
    if (!st.isBlockDevice()) return null;
    const { major, minor } = splitDevT(st.rdev);
    return `${major}:${minor}`;
  } catch {
    return null;
  }
}

/** Reads the mount table and the swap list once (then usesOf() per device). */
export async function readSystemUsage(sources: UsageSources = {}): Promise<SystemUsage> {
  const mountinfo = sources.mountinfo ?? (await readFile('/proc/self/mountinfo', 'utf8').catch(() => ''));
  const swapsText = sources.swaps ?? (await readFile('/proc/swaps', 'utf8').catch(() => ''));
  const mounts = new Map<string, string[]>();
  const add = (key: string, mountPoint: string): void => {
    const list = mounts.get(key) ?? [];
    if (!list.includes(mountPoint)) list.push(mountPoint);
    mounts.set(key, list);
  };
  for (const m of parseMountinfoEntries(mountinfo)) {
    if (!m.majMin.startsWith('0:')) add(m.majMin, m.mountPoint);
    // btrfs (and others) report an anonymous device: match the source device too
    const bySource = m.source.startsWith('/dev/') ? majMinOfBlockDevice(m.source) : null;
    if (bySource && bySource !== m.majMin) add(bySource, m.mountPoint);
  }
  const swaps = new Set<string>();
  for (const name of parseSwaps(swapsText)) {
    const key = majMinOfBlockDevice(name);
    if (key) swaps.add(key);
  }
  return { mounts, swaps };
}

/** One use of a device (or of one of its partitions, or of its whole disk). */
export interface DeviceUse {
  /** Kernel name of the device in use ("loop0", "loop0p1", "sda"). */
  device: string;
  kind: 'mounted' | 'swap' | 'held' | 'suspended';
  /** The mount point, or the holder ("dm-0 (vg-root)", "md0 (RAID)"). */
  detail: string;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** "dm-0 (vg-root)", "md0 (RAID)", or the bare kernel name. */
function holderLabel(sysRoot: string, name: string): string {
  const dmName = readText(join(sysRoot, 'class/block', name, 'dm/name'));
  if (dmName) return `${name} (${dmName})`;
  if (existsSync(join(sysRoot, 'class/block', name, 'md'))) return `${name} (RAID)`;
  return name;
}

/** The uses of one sysfs block directory (not of its partitions). */
function directUses(usage: SystemUsage, sysRoot: string, dir: string): DeviceUse[] {
  const device = basename(dir);
  const key = readText(join(dir, 'dev'));
  const uses: DeviceUse[] = [];
  if (key) {
    for (const mountPoint of usage.mounts.get(key) ?? []) uses.push({ device, kind: 'mounted', detail: mountPoint });
    if (usage.swaps.has(key)) uses.push({ device, kind: 'swap', detail: '' });
  }
  for (const holder of listDir(join(dir, 'holders')).sort()) uses.push({ device, kind: 'held', detail: holderLabel(sysRoot, holder) });
  return uses;
}

/**
 * Every use of the block device `major:minor`: its own, its partitions', and (for a
 * partition) the whole disk's own. A suspended device-mapper device counts as in use
 * (I/O to it would hang). [] when the device is free or unknown to sysfs.
 */
export function usesOf(usage: SystemUsage, major: number, minor: number, sysRoot = '/sys'): DeviceUse[] {
  let dir: string;
  try {
    dir = realpathSync(join(sysRoot, 'dev/block', `${major}:${minor}`));
  } catch {
    return [];
  }
  const uses = directUses(usage, sysRoot, dir);
  if (readText(join(dir, 'dm/suspended')) === '1') uses.push({ device: basename(dir), kind: 'suspended', detail: '' });
  const isPartition = existsSync(join(dir, 'partition'));
  if (isPartition) {
    uses.push(...directUses(usage, sysRoot, dirname(dir)));
  } else {
    for (const child of listDir(dir).sort()) {
      if (existsSync(join(dir, child, 'partition'))) uses.push(...directUses(usage, sysRoot, join(dir, child)));
    }
  }
  return uses;
}

/** Plain words for one use; `self` is the kernel name of the device asked about. */
export function describeUse(use: DeviceUse, self: string): string {
  switch (use.kind) {
    case 'mounted':
      return use.device === self ? `mounted at ${use.detail}` : `${use.device} is mounted at ${use.detail}`;
    case 'swap':
      return use.device === self ? 'used as swap' : `${use.device} is used as swap`;
    case 'held':
      return use.device === self ? `held by ${use.detail}` : `${use.device} is held by ${use.detail}`;
    case 'suspended':
      return use.device === self ? 'a suspended device-mapper device' : `${use.device} is a suspended device-mapper device`;
  }
}

/** The uses of `major:minor` in plain words ([] when free): what devices.list and a refused front say. */
export async function whatHolds(major: number, minor: number, sources: UsageSources = {}): Promise<string[]> {
  const usage = await readSystemUsage(sources);
  return describeUses(usage, major, minor, sources.sysRoot);
}

/** describeUse() over usesOf(). */
export function describeUses(usage: SystemUsage, major: number, minor: number, sysRoot = '/sys'): string[] {
  const uses = usesOf(usage, major, minor, sysRoot);
  let self = '';
  try {
    self = basename(realpathSync(join(sysRoot, 'dev/block', `${major}:${minor}`)));
  } catch {
    // unknown to sysfs: no uses either
  }
  return uses.map((u) => describeUse(u, self));
}

/**
 * The loop devices whose backing file is the file `dev:ino` (a regular file): writing
 * the file would change what those devices, and whatever is mounted from them, read.
 * Kernel names, e.g. ["loop3"]. From /sys/block/loopN/loop/backing_file.
 */
export function loopDevicesOver(dev: number, ino: number, sysRoot = '/sys'): string[] {
  const out: string[] = [];
  for (const name of listDir(join(sysRoot, 'block')).sort()) {
    if (!name.startsWith('loop')) continue;
    const backing = readText(join(sysRoot, 'block', name, 'loop/backing_file'));
    if (!backing || !backing.startsWith('/')) continue;
    try {
      const st = statSync(backing);
      if (st.dev === dev && st.ino === ino) out.push(name);
    } catch {
      // a deleted backing file: not ours
    }
  }
  return out;
}
