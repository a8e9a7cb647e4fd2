/**
 * Production wiring of the kernel driver: koffi ioctls, in the dialect of the
 * module found on this machine (detect.ts; v6 when none is found) (docs/kernel-driver.md).
 */
import { existsSync } from 'node:fs';
import { detectKernelModule } from './detect.js';
import { DIALECTS } from './dialects.js';
import type { KernelDriverOptions } from './kernel-driver.js';
import { DEFAULT_CONTROL_PATH, KernelDriver } from './kernel-driver.js';
import { KoffiIoctlLayer } from './koffi-ioctl-layer.js';

/** True when the control device exists (default /dev/blksnap-control; see detectKernelModule for every dialect). */
export function kernelModuleAvailable(controlPath = DEFAULT_CONTROL_PATH): boolean {
  return existsSync(controlPath);
}

/** A KernelDriver issuing real ioctls through koffi, in the detected dialect unless `dialect` is given. */
export function createKernelDriver(options: Omit<KernelDriverOptions, 'layer'> = {}): KernelDriver {
  const detected = options.dialect ? null : detectKernelModule().dialect;
  return new KernelDriver({ ...options, dialect: options.dialect ?? DIALECTS[detected ?? 'v6'], layer: new KoffiIoctlLayer() });
}
