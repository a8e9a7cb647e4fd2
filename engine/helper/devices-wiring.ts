/**
 * The helper's connection to engine/devices: the image registry (images.json in
 * the state directory) and block-device discovery (lsblk, sysfs fallback), adapted
 * to the interfaces of backends.ts.
 */
import { ImageRegistry as DevicesImageRegistry, discoverBlockDevices, flattenDevices } from '../devices/index.js';
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

/** The machine's block devices, each with what holds it (the check the engine makes before fronting it). */
export async function listBlockDevices(): Promise<BlockDeviceRecord[]> {
  const { devices } = await discoverBlockDevices();
  const usage = await readSystemUsage();
  return flattenDevices(devices)
    .filter((d) => d.type !== 'rom')
    .map((d) => ({
      path: d.path,
      name: d.name,
      capacity: d.size,
      model: d.model,
      fsType: d.fstype,
      mountpoints: d.mountpoints,
      readOnly: d.readOnly,
      blockedBy: blockedBy(usage, d.majMin),
    }));
}

function blockedBy(usage: SystemUsage, majMin: string): string[] {
  const m = /^(\d+):(\d+)$/.exec(majMin);
  return m ? describeUses(usage, Number(m[1]), Number(m[2])) : [];
}
