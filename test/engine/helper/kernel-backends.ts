/** Helper backends around a (fake) kernel driver: no engine, no images, no NBD. */
import type { BlksnapDriver } from '../../../engine/abi/driver.js';
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
