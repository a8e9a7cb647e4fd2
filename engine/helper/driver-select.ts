/**
 * Which driver the helper runs: the kernel module's when a blksnap module of a
 * dialect the driver speaks is loaded (engine/kernel/detect.ts), else the embedded
 * engine; `driver` overrides. Both are loaded lazily so the embedded helper never
 * loads koffi and the kernel helper never the engine.
 */
import type { BlksnapDriver } from '../abi/driver.js';
import { BlksnapError } from '../abi/errno.js';
import type { EmbeddedEngineApi } from '../core/embedded-api.js';
import type { ModuleParams } from '../core/params.js';
import type { ModuleHealth } from '../kernel/detect.js';
import { detectKernelModule } from '../kernel/detect.js';
import { DIALECTS } from '../kernel/dialects.js';

export type DriverChoice = 'auto' | 'kernel' | 'embedded';

/** The module can be driven: a known dialect, and for VAL-7.0 its bdevfilter. */
export function moduleUsable(health: ModuleHealth): boolean {
  return health.dialect !== null && (health.filter !== 'bdevfilter' || health.bdevfilter);
}

export function chooseDriverKind(choice: DriverChoice, health: ModuleHealth = detectKernelModule()): 'kernel' | 'embedded' {
  if (choice !== 'auto') return choice;
  return moduleUsable(health) ? 'kernel' : 'embedded';
}

/** The kernel driver in the dialect `health` found; ENOENT with what to install when there is none. */
export async function createKernelDriver(health: ModuleHealth = detectKernelModule()): Promise<BlksnapDriver> {
  if (health.dialect === null) {
    throw new BlksnapError(
      'ENOENT',
      `${health.summary}: ${health.advice ?? INSTALL_HINT} (or run the helper with --driver embedded)`,
    );
  }
  const [{ KernelDriver }, { KoffiIoctlLayer }, { reserveFileSpace }] = await Promise.all([
    import('../kernel/kernel-driver.js'),
    import('../kernel/koffi-ioctl-layer.js'),
    import('../core/fallocate.js'),
  ]);
  return new KernelDriver({ layer: new KoffiIoctlLayer(), dialect: DIALECTS[health.dialect], reserveSpace: reserveFileSpace });
}

const INSTALL_HINT = 'install a blksnap module';

export async function createEmbeddedDriver(params: Partial<ModuleParams> = {}): Promise<EmbeddedEngineApi> {
  const { createEmbeddedEngine } = await import('../core/index.js');
  return await createEmbeddedEngine({ params });
}
