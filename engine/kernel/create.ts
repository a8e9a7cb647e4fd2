/**
 * Production wiring of the kernel driver: koffi ioctls, chosen when the blksnap
 * control device exists (docs/kernel-driver.md).
 */
import { existsSync } from 'node:fs';
import type { KernelDriverOptions } from './kernel-driver.js';
import { DEFAULT_CONTROL_PATH, KernelDriver } from './kernel-driver.js';
import { KoffiIoctlLayer } from './koffi-ioctl-layer.js';

/** True when /dev/blksnap-control exists (the module is loaded). */
export function kernelModuleAvailable(controlPath = DEFAULT_CONTROL_PATH): boolean {
  return existsSync(controlPath);
}

/** A KernelDriver issuing real ioctls through koffi. */
export function createKernelDriver(options: Omit<KernelDriverOptions, 'layer'> = {}): KernelDriver {
  return new KernelDriver({ ...options, layer: new KoffiIoctlLayer() });
}
