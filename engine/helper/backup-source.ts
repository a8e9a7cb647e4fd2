/**
 * What a backup of one device of a taken snapshot reads: the snapshot image (the
 * embedded engine's image device in-process, or the kernel's image block device
 * opened read-only), the CBT state and whole CBT map of the take, and the device's
 * identity (path, size; model where known).
 */
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { BlksnapError } from '../abi/errno.js';
import type { ChainCbt, DeviceIdentity, ImageReader } from '../backup/index.js';
import { MAX_CBT_MAP_LENGTH } from '../protocol/limits.js';
import type { HelperBackends } from './backends.js';

export interface DeviceSource {
  device: string;
  identity: DeviceIdentity;
  cbt: ChainCbt;
  cbtMap: Uint8Array;
  /** The snapshot image's name (engine image or kernel image device). */
  image: string;
  reader: ImageReader;
  close(): Promise<void>;
}

export interface SourceOptions {
  /** Kernel driver: the path of an image's block device (default /dev/NAME; tests use a file). */
  imageDevicePath?: (image: string) => string;
}

/** The whole CBT map of `device`, read in portions. */
export async function readCbtMap(backends: HelperBackends, device: string, blockCount: number): Promise<Uint8Array> {
  const map = new Uint8Array(blockCount);
  let at = 0;
  while (at < blockCount) {
    const part = await backends.driver.cbtMap(device, at, Math.min(MAX_CBT_MAP_LENGTH, blockCount - at));
    if (part.length === 0) throw new BlksnapError('EIO', `the CBT map of ${device} ended after ${at} of ${blockCount} blocks`);
    map.set(part, at);
    at += part.length;
  }
  return map;
}

/** The identity recorded in a backup's manifest for `device`. */
export async function deviceIdentity(backends: HelperBackends, device: string, capacity: number): Promise<DeviceIdentity> {
  const engineDevice = backends.engine?.listDevices().find((d) => d.name === device);
  if (engineDevice) return { path: engineDevice.path, size: engineDevice.capacity };
  const block = (await backends.listBlockDevices().catch(() => [])).find((b) => b.path === device);
  const identity: DeviceIdentity = { path: device, size: capacity };
  if (block?.model) identity.model = block.model;
  return identity;
}

export async function openDeviceSource(backends: HelperBackends, device: string, options: SourceOptions = {}): Promise<DeviceSource> {
  const { driver, engine } = backends;
  const info = await driver.snapshotInfo(device);
  if (!info.image) throw new BlksnapError('EINVAL', `${device} has no snapshot image: take the snapshot first`);
  const cbtInfo = await driver.cbtInfo(device);
  const cbtMap = await readCbtMap(backends, device, cbtInfo.blockCount);
  const identity = await deviceIdentity(backends, device, cbtInfo.deviceCapacity);
  const cbt: ChainCbt = { generationId: cbtInfo.generationId, changeNumber: cbtInfo.changesNumber, blockSize: cbtInfo.blockSize };
  if (engine) {
    const image = engine.image(info.image);
    return { device, identity, cbt, cbtMap, image: info.image, reader: image, close: async () => undefined };
  }
  const path = (options.imageDevicePath ?? ((name: string) => `/dev/${name}`))(info.image);
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new BlksnapError('EIO', `cannot open the snapshot image ${path} of ${device}: ${(err as Error).message}`);
  }
  const reader = async (offset: number, length: number): Promise<Buffer> => {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === length ? buf : buf.subarray(0, got);
  };
  return { device, identity, cbt, cbtMap, image: info.image, reader, close: () => fh.close() };
}
