/**
 * Which driver the helper runs: the kernel module's when /dev/blksnap-control
 * exists, else the embedded engine; `driver` overrides. Both are loaded lazily so
 * the embedded helper never loads koffi and the kernel helper never the engine.
 */
import { existsSync } from 'node:fs';
import type { BlksnapDriver } from '../abi/driver.js';
import { BlksnapError } from '../abi/errno.js';
import type { EmbeddedEngineApi } from '../core/embedded-api.js';
import type { ModuleParams } from '../core/params.js';

export type DriverChoice = 'auto' | 'kernel' | 'embedded';

export const CONTROL_DEVICE = '/dev/blksnap-control';

export function chooseDriverKind(choice: DriverChoice, controlPath = CONTROL_DEVICE): 'kernel' | 'embedded' {
  if (choice !== 'auto') return choice;
  return existsSync(controlPath) ? 'kernel' : 'embedded';
}

export async function createKernelDriver(controlPath = CONTROL_DEVICE): Promise<BlksnapDriver> {
  if (!existsSync(controlPath)) {
    throw new BlksnapError(
      'ENOENT',
      `${controlPath} does not exist: the blksnap kernel module is not loaded (load it with "modprobe blksnap", or run the helper with --driver embedded)`,
    );
  }
  const [{ KernelDriver }, { KoffiIoctlLayer }] = await Promise.all([
    import('../kernel/kernel-driver.js'),
    import('../kernel/koffi-ioctl-layer.js'),
  ]);
  return new KernelDriver({ layer: new KoffiIoctlLayer(), controlPath });
}

export async function createEmbeddedDriver(params: Partial<ModuleParams> = {}): Promise<EmbeddedEngineApi> {
  const { createEmbeddedEngine } = await import('../core/index.js');
  return await createEmbeddedEngine({ params });
}
