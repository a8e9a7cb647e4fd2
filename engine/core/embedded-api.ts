import type { BlksnapDriver } from '../abi/driver.js';
import type { DeviceRef, SnapshotId } from '../abi/types.js';
import type { BlockDevice } from './block-device.js';
import type { ModuleParams } from './params.js';

/** An engine device: an image file (or a block device the engine fronts). */
export interface EngineDeviceInfo {
  /** Unique name, used as the DeviceRef and the NBD export name. */
  name: string;
  /** Path of the backing image file or block device. */
  path: string;
  capacity: number;
  /** Synthetic device numbers (major 259-like) used in events. */
  devMajor: number;
  devMinor: number;
  /** The blksnap filter is attached (the change tracker exists). */
  attached: boolean;
  /** The snapshot this device belongs to, if any. */
  snapshotId: SnapshotId | null;
}

export interface EngineImageInfo {
  /** "blksnap-imageN": the snapshot image name, also its NBD export name. */
  name: string;
  device: string;
  snapshotId: SnapshotId;
  capacity: number;
}

/**
 * The embedded engine: the BlksnapDriver plus what only a userspace engine has:
 * its devices (whose writes go through the tracker and copy-on-write) and the
 * snapshot images, both as BlockDevices that the NBD server exports.
 */
export interface AddDeviceOptions {
  path: string;
  name?: string;
  openPath?: string;
}

export interface EmbeddedEngineApi extends BlksnapDriver {
  readonly kind: 'embedded';
  /** The module parameters the engine runs with (chunk sizes, storage portions). */
  readonly params: ModuleParams;
  /**
   * Opens an existing image file or block device as an engine device (ENOENT, EEXIST
   * for a taken name, EBUSY if already open). With `openPath` (a /proc/self/fd/N link
   * of a descriptor its caller opened and checked), that very file is opened and
   * `path` only names it.
   */
  addDevice(options: AddDeviceOptions): Promise<EngineDeviceInfo>;
  /** Closes an engine device (EBUSY while in a snapshot). */
  removeDevice(device: DeviceRef): Promise<void>;
  listDevices(): EngineDeviceInfo[];
  /** The device for I/O: writes are tracked and copied-on-write. ENOENT if unknown. */
  device(device: DeviceRef): BlockDevice;
  listImages(): EngineImageInfo[];
  /** A snapshot image for I/O, by image name. ENOENT if unknown. */
  image(name: string): BlockDevice;
  /**
   * Extension, not in the v6 ABI: `length` bytes of the *active* (write) CBT table
   * from `offset`, where writes since the last take already show the active change
   * number (cbtMap gives the read table, frozen at the last take). Same portion
   * semantics and errnos as cbtMap: ENOENT without the filter, EINVAL for a bad
   * portion, ENODATA for an offset past the end, EFAULT when the map is corrupted.
   */
  cbtMapActive(device: DeviceRef, offset: number, length: number): Promise<Uint8Array>;
  /**
   * Extension (the module's append_storage in VAL-7's series): raises a held
   * snapshot's difference-storage limit by `sectors`. ESRCH for an unknown snapshot,
   * EINVAL for a bad count, ENOSPC once the storage has overflowed.
   */
  storageGrow(id: SnapshotId, sectors: number): Promise<void>;
}
