/**
 * The helper's connection to engine/devices: the image registry (images.json in
 * the state directory) and block-device discovery (lsblk, sysfs fallback), adapted
 * to the interfaces of backends.ts.
 */
import { realpathSync } from 'node:fs';
import { ImageRegistry as DevicesImageRegistry, discoverBlockDevices } from '../devices/index.js';
import { placeDevices } from '../devices/block-device-entry.js';
import type { BlockDeviceEntry } from '../devices/block-device-entry.js';
import { readPartitionTableOfFile } from '../devices/partition-table.js';
import { loopBackingFile, partitionStartBytes } from '../devices/sysfs-block.js';
import { writeBypass } from '../devices/write-bypass.js';
import type { Partition } from '../protocol/schemas.js';
import { describeUses, readSystemUsage } from '../devices/device-holders.js';
import type { SystemUsage } from '../devices/device-holders.js';
import type { BlockDeviceRecord, ImageRecord, ImageRegistry } from './backends.js';
import { BlksnapError } from '../abi/errno.js';

class RegistryAdapter implements ImageRegistry {
  constructor(private readonly registry: DevicesImageRegistry) {}

  async list(): Promise<ImageRecord[]> {
    return (await this.registry.list()).map((e) => ({ name: e.name, path: e.path, created: e.created }));
  }

  async create(options: { path: string; size: number; name?: string }): Promise<ImageRecord> {
    const e = await this.registry.registerCreated(options.path, options.size, options.name === undefined ? {} : { name: options.name });
    return { name: e.name, path: e.path, created: e.created };
  }

  async add(options: { path: string; name?: string }): Promise<ImageRecord> {
    const e = await this.registry.register(options.path, options.name === undefined ? {} : { name: options.name });
    return { name: e.name, path: e.path, created: e.created };
  }

  async remove(nameOrPath: string): Promise<ImageRecord> {
    const entry = (await this.registry.list()).find((e) => e.name === nameOrPath || e.path === nameOrPath);
    if (!entry) throw new BlksnapError('ENOENT', `no registered image "${nameOrPath}"`);
    const e = await this.registry.unregister(entry.name);
    return { name: e.name, path: e.path, created: e.created };
  }
}

export async function openImageRegistry(stateDir: string): Promise<ImageRegistry> {
  return new RegistryAdapter(new DevicesImageRegistry(stateDir));
}

/** The machine's block devices as a tree (each with its parents), each with what holds it (the check the engine makes before fronting it). */
export async function listBlockDevices(): Promise<BlockDeviceRecord[]> {
  const { devices } = await discoverBlockDevices();
  const usage = await readSystemUsage();
  const placed = placeDevices(devices).filter((p) => p.entry.type !== 'rom');
  const starts = new Map(placed.filter((p) => p.entry.type === 'part').map((p) => [p.entry.path, partitionStartBytes(p.entry.name)]));
  return placed.map(({ entry: d, parents }) => ({
    path: d.path,
    name: d.name,
    capacity: d.size,
    model: d.model,
    fsType: d.fstype,
    mountpoints: d.mountpoints,
    readOnly: d.readOnly,
    blockedBy: blockedBy(usage, d.majMin),
    type: d.type,
    label: d.label,
    parents,
    backingFile: d.type === 'loop' ? loopBackingFile(d.name) : null,
    partitions: kernelPartitions(d, starts),
  }));
}

/** The partitions the kernel knows on a disk: its "part" children with their start from sysfs. */
function kernelPartitions(d: BlockDeviceEntry, starts: Map<string, number | null>): Partition[] {
  const out: Partition[] = [];
  for (const c of d.children ?? []) {
    const start = starts.get(c.path);
    if (c.type !== 'part' || start === undefined || start === null) continue;
    const number = /(\d+)$/.exec(c.name);
    out.push({ number: number ? Number(number[1]) : out.length + 1, start, size: c.size, name: c.name });
  }
  return out.sort((a, b) => a.start - b.start);
}

/** An engine device's partitions, from the partition table on it (image file or fronted device). */
export async function tablePartitions(path: string): Promise<Partition[]> {
  const table = await readPartitionTableOfFile(path);
  return (table?.partitions ?? [])
    .map((p) => ({ number: p.number, start: p.startBytes, size: p.sizeBytes, name: p.name ?? `partition ${p.number}` }))
    .sort((a, b) => a.start - b.start);
}

/** Mounted filesystems that write the bytes of the engine device on `path` without the engine. */
export function engineWriteBypass(path: string, block: BlockDeviceRecord[]): string[] {
  const devices = block.map((b) => ({ path: b.path, mountpoints: b.mountpoints ?? [], parents: b.parents ?? [], backingFile: b.backingFile ?? null }));
  // the kernel names a loop device's file by its canonical path; lsblk names /dev/mapper links as such
  let real = path;
  try {
    real = realpathSync(path);
  } catch {
    // gone meanwhile: nothing more to match
  }
  const found = writeBypass(path, devices);
  return real === path ? found : [...new Set([...found, ...writeBypass(real, devices)])];
}

function blockedBy(usage: SystemUsage, majMin: string): string[] {
  const m = /^(\d+):(\d+)$/.exec(majMin);
  return m ? describeUses(usage, Number(m[1]), Number(m[2])) : [];
}
