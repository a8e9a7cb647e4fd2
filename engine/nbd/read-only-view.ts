import { BlksnapError } from '../abi/errno.js';
import type { BlockDevice } from '../core/block-device.js';

/** A read-only face of a device: reads and flushes pass through, writes fail with EROFS. */
export function readOnlyView(device: BlockDevice): BlockDevice {
  if (device.readOnly) return device;
  const refuse = (): Promise<never> => Promise.reject(new BlksnapError('EROFS', `${device.name} is exported read-only`));
  const readTo = device.readTo?.bind(device);
  const readToNow = device.readToNow?.bind(device);
  return {
    name: device.name,
    capacity: device.capacity,
    logicalBlockSize: device.logicalBlockSize,
    physicalBlockSize: device.physicalBlockSize,
    readOnly: true,
    read: (offset, length) => device.read(offset, length),
    ...(readTo === undefined ? {} : { readTo }),
    ...(readToNow === undefined ? {} : { readToNow }),
    ...(device.extents === undefined ? {} : { extents: device.extents.bind(device) }),
    ...(device.extentsNow === undefined ? {} : { extentsNow: device.extentsNow.bind(device) }),
    ...(device.changeMap === undefined ? {} : { changeMap: device.changeMap.bind(device) }),
    flush: () => device.flush(),
    write: refuse,
    discard: refuse,
    writeZeroes: refuse,
  };
}
