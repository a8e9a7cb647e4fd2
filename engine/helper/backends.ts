/**
 * What the helper service works with, as interfaces: the driver, the embedded
 * engine (null with the kernel driver), the image registry and block-device
 * discovery of engine/devices, and the NBD server's URIs.
 */
import type { ModuleHealth } from '../kernel/detect.js';
import type { BlksnapDriver } from '../abi/driver.js';
import type { EmbeddedEngineApi } from '../core/embedded-api.js';
import type { BackupExports } from './backup-exports.js';
import type { Owner } from './owner.js';
import type { Partition } from '../protocol/schemas.js';

export interface ImageRecord {
  name: string;
  path: string;
  /** The helper created the file (images.create): a lab disk. */
  created: boolean;
}

export interface ImageRegistry {
  list(): Promise<ImageRecord[]>;
  /** Registers a lab disk the helper has just created (with the caller's rights) at `path`, `size` bytes. */
  create(options: { path: string; size: number; name?: string }): Promise<ImageRecord>;
  /** Registers an existing image file or block device. */
  add(options: { path: string; name?: string }): Promise<ImageRecord>;
  /** Unregisters by name or path (the file is kept). */
  remove(nameOrPath: string): Promise<ImageRecord>;
}

export interface BlockDeviceRecord {
  path: string;
  name: string;
  capacity: number;
  model?: string | null;
  fsType?: string | null;
  mountpoints?: string[];
  readOnly?: boolean;
  /** Why the embedded engine cannot front it (mounted, swap, holders); [] when it can. */
  blockedBy?: string[];
  /** lsblk TYPE. */
  type?: string;
  label?: string | null;
  /** Paths of the devices it sits on ([] for a disk). */
  parents?: string[];
  /** Loop devices: the file attached, else null. */
  backingFile?: string | null;
  /** Its partitions (the kernel's: from lsblk and sysfs). */
  partitions?: Partition[];
}

export interface NbdUris {
  socketPath: string;
  uriFor(exportName: string): string;
  /** Whether the export is read-only as the NBD server serves it now (null: no such export). */
  readOnly(exportName: string): boolean | null;
}

export interface HelperBackends {
  driver: BlksnapDriver;
  engine: EmbeddedEngineApi | null;
  images: ImageRegistry | null;
  listBlockDevices(): Promise<BlockDeviceRecord[]>;
  nbd: NbdUris | null;
  /** Driver version text for hello ("major.minor.revision.build"). */
  driverVersion: string;
  /** The kernel module found at start (hello's kernelModule). */
  kernelModule?: ModuleHealth;
  /** The user the helper works for (directory checks, ownership of created images). */
  owner: Owner;
  /** Browsed backup points served by the NBD server (null/absent: no NBD server). */
  backupExports?: BackupExports | null;
  /**
   * With the kernel driver (no engine, so `nbd` is null): an NBD server of its own that
   * serves only the browsed backup points (null/absent: none).
   */
  browseNbd?: NbdUris | null;
}
