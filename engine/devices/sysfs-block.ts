/**
 * Block-device discovery from /sys/block, for machines where lsblk is missing or
 * fails: size, queue/logical_block_size, queue/physical_block_size, ro,
 * device/model, serial, dev; partitions as children; mount points from
 * /proc/self/mountinfo. The root is a parameter so tests can use a fake tree.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SECTOR_SIZE } from '../abi/types.js';
import type { BlockDeviceEntry } from './block-device-entry.js';
import { parseMountinfoEntries } from './device-holders.js';

function read(path: string): string | null {
  try {
    const text = readFileSync(path, 'utf8').trim();
    return text === '' ? null : text;
  } catch {
    return null;
  }
}

function readNum(path: string, fallback: number): number {
  const text = read(path);
  const n = text === null ? NaN : Number(text);
  return Number.isFinite(n) ? n : fallback;
}

/** major:minor -> mount points, from mountinfo text (field 3 and 5, octal escapes decoded). */
export function parseMountinfo(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const { majMin, mountPoint } of parseMountinfoEntries(text)) {
    const list = out.get(majMin) ?? [];
    list.push(mountPoint);
    out.set(majMin, list);
  }
  return out;
}

function deviceType(name: string, isPartition: boolean): string {
  if (isPartition) return 'part';
  if (name.startsWith('loop')) return 'loop';
  if (name.startsWith('sr')) return 'rom';
  if (name.startsWith('dm-')) return 'dm';
  if (name.startsWith('md')) return 'raid';
  return 'disk';
}

export interface SysfsOptions {
  /** Default "/sys". */
  sysRoot?: string;
  /** Default "/dev". */
  devDir?: string;
  /** mountinfo text; default /proc/self/mountinfo. */
  mountinfo?: string;
}

function describe(
  dir: string,
  sysName: string,
  isPartition: boolean,
  parentQueue: string,
  devDir: string,
  mounts: Map<string, string[]>,
): BlockDeviceEntry {
  // sysfs writes a "/" of the kernel name as "!" (cciss!c0d0 is /dev/cciss/c0d0).
  const name = sysName.replace(/!/g, '/');
  const majMin = read(join(dir, 'dev')) ?? '';
  const queue = isPartition ? parentQueue : join(dir, 'queue');
  const logical = readNum(join(queue, 'logical_block_size'), SECTOR_SIZE);
  return {
    name,
    path: `${devDir}/${name}`,
    majMin,
    size: readNum(join(dir, 'size'), 0) * SECTOR_SIZE,
    logicalBlockSize: logical,
    physicalBlockSize: readNum(join(queue, 'physical_block_size'), logical),
    model: isPartition ? null : read(join(dir, 'device', 'model')),
    serial: isPartition ? null : (read(join(dir, 'serial')) ?? read(join(dir, 'device', 'serial'))),
    type: deviceType(name, isPartition),
    fstype: null,
    label: null,
    mountpoints: mounts.get(majMin) ?? [],
    readOnly: read(join(dir, 'ro')) === '1',
  };
}

/** The device tree from sysfs. Unbacked loop devices (size 0) are left out, as lsblk does. */
export function readSysfsBlockDevices(options: SysfsOptions = {}): BlockDeviceEntry[] {
  const sysRoot = options.sysRoot ?? '/sys';
  const devDir = options.devDir ?? '/dev';
  const mounts = parseMountinfo(options.mountinfo ?? read('/proc/self/mountinfo') ?? '');
  const blockDir = join(sysRoot, 'block');
  const result: BlockDeviceEntry[] = [];
  for (const name of readdirSync(blockDir).sort()) {
    const dir = join(blockDir, name);
    const disk = describe(dir, name, false, '', devDir, mounts);
    if (disk.type === 'loop' && disk.size === 0) continue;
    const children: BlockDeviceEntry[] = [];
    let subdirs: string[];
    try {
      subdirs = readdirSync(dir).sort();
    } catch {
      subdirs = [];
    }
    for (const sub of subdirs) {
      if (existsSync(join(dir, sub, 'partition'))) {
        children.push(describe(join(dir, sub), sub, true, join(dir, 'queue'), devDir, mounts));
      }
    }
    if (children.length > 0) disk.children = children;
    result.push(disk);
  }
  return result;
}

/** A partition's first byte on its disk (/sys/class/block/NAME/start, in 512-byte sectors), or null. */
export function partitionStartBytes(name: string, sysRoot = '/sys'): number | null {
  const text = read(join(sysRoot, 'class', 'block', name.replace(/\//g, '!'), 'start'));
  return text !== null && /^\d+$/.test(text) ? Number(text) * SECTOR_SIZE : null;
}

/** The file a loop device is attached to (/sys/block/loopN/loop/backing_file), or null. */
export function loopBackingFile(name: string, sysRoot = '/sys'): string | null {
  const text = read(join(sysRoot, 'block', name, 'loop', 'backing_file'));
  return text === null ? null : text.replace(/ \(deleted\)$/, '');
}
