/** Helper backends for tests: around a (fake) kernel driver, or an embedded engine; no images, no NBD. */
import type { BlksnapDriver } from '../../../engine/abi/driver.js';
import type { EmbeddedEngineApi } from '../../../engine/core/embedded-api.js';
import type { HelperBackends } from '../../../engine/helper/backends.js';

export function kernelBackends(driver: BlksnapDriver, overrides: Partial<HelperBackends> = {}): HelperBackends {
  return {
    driver,
    engine: null,
    images: null,
    listBlockDevices: async () => [],
    nbd: null,
    driverVersion: '6.0.0.0',
    owner: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
    ...overrides,
  };
}

/** Helper backends around an embedded engine: no image registry, no NBD. */
export function embeddedBackends(engine: EmbeddedEngineApi, overrides: Partial<HelperBackends> = {}): HelperBackends {
  return kernelBackends(engine, { engine, driverVersion: '1.0.0.0', ...overrides });
}
