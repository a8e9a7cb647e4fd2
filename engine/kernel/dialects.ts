/**
 * The three blksnap ABI dialects the kernel driver speaks, as one table each: the
 * device names, the request numbers and the encoders of the structs that differ.
 * The driver (kernel-driver.ts) is the same for all three; it asks its dialect how to
 * name the difference storage, where to send filter commands and what event code 1
 * means. Facts: docs/kernel-driver.md ("Dialects").
 */
import { LAYOUT, encodeBlkfilterCtl, encodeBlkfilterName } from './abi-structs.js';
import {
  DIALECT_LAYOUT,
  encodeBdevfilterCtl,
  encodeBdevfilterName,
  encodeBlkfilterAttach,
  encodeBlkfilterDetach,
} from './dialect-structs.js';
import {
  BLKFILTER_ATTACH,
  BLKFILTER_CTL,
  BLKFILTER_DETACH,
  BLKSNAP_IOCTL_TYPE,
  BLOCK_IOCTL_TYPE,
  IOCTL_BLKSNAP_SNAPSHOT_CREATE,
  iow,
  iowr,
} from './ioctl-numbers.js';

export const DIALECT_NAMES = ['v6', 'val7', 'lk6.15'] as const;
export type DialectName = (typeof DIALECT_NAMES)[number];

/** Where filter commands go: the block device's own fd, or VAL-7.0's /dev/bdevfilter naming the device by path. */
export type FilterMechanism = 'block-device' | 'bdevfilter';

/** bdevfilter.h: type 'F'. */
export const BDEVFILTER_IOCTL_TYPE = 'F'.charCodeAt(0);

export const VAL7_BDEVFILTER_ATTACH = iowr(BDEVFILTER_IOCTL_TYPE, 140, DIALECT_LAYOUT.bdevfilter_name.size);
export const VAL7_BDEVFILTER_DETACH = iowr(BDEVFILTER_IOCTL_TYPE, 141, DIALECT_LAYOUT.bdevfilter_name.size);
export const VAL7_BDEVFILTER_CTL = iowr(BDEVFILTER_IOCTL_TYPE, 142, DIALECT_LAYOUT.bdevfilter_ctl.size);
export const VAL7_IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE = iow(
  BLKSNAP_IOCTL_TYPE,
  34,
  DIALECT_LAYOUT.blksnap_snapshot_append_storage.size,
);
/** lk6.15 fs.h: nr 142..144. Its ATTACH has the number of v6's CTL. */
export const LK615_BLKFILTER_ATTACH = iowr(BLOCK_IOCTL_TYPE, 142, DIALECT_LAYOUT.blkfilter_attach.size);
export const LK615_BLKFILTER_DETACH = iowr(BLOCK_IOCTL_TYPE, 143, DIALECT_LAYOUT.blkfilter_detach.size);
export const LK615_BLKFILTER_CTL = iowr(BLOCK_IOCTL_TYPE, 144, LAYOUT.blkfilter_ctl.size);

/** The fields of a filter command; `devpath` is the address of the device path (bdevfilter only, else 0). */
export interface FilterCtlFields {
  devpath: bigint;
  name: string;
  cmd: number;
  optlen: number;
  opt: bigint;
}

export interface KernelDialect {
  readonly name: DialectName;
  /** For messages and the module health line. */
  readonly title: string;
  /** The module's misc control device. */
  readonly controlPath: string;
  /** The module name in /sys/module. */
  readonly moduleName: string;
  readonly filter: FilterMechanism;
  /** The device filter commands go to when `filter` is 'bdevfilter'. */
  readonly filterControlPath: string | null;
  /** How snapshot_create names the difference storage: an open fd (v6) or a path. */
  readonly storage: 'fd' | 'path';
  /** Offset of the output id in snapshot_create. */
  readonly createIdOffset: number;
  readonly createRequest: number;
  readonly attachRequest: number;
  readonly detachRequest: number;
  readonly ctlRequest: number;
  /** IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE, where the module has it. */
  readonly appendStorageRequest: number | null;
  /** What blksnap_snapshot_event.code 1 means (body: u64 requested_nr_sect). */
  readonly eventCode1: 'no_space' | 'low_free_space';
  /** The image's disk name for a device major:minor (snapimage.c). */
  imageDiskName(major: number, minor: number): string;
  encodeAttach(devpath: bigint, name: string): Buffer;
  encodeDetach(devpath: bigint, name: string): Buffer;
  encodeCtl(fields: FilterCtlFields): Buffer;
}

const v6: KernelDialect = {
  name: 'v6',
  title: 'blksnap v6 (6.7-rc1 patch series)',
  controlPath: '/dev/blksnap-control',
  moduleName: 'blksnap',
  filter: 'block-device',
  filterControlPath: null,
  storage: 'fd',
  createIdOffset: LAYOUT.blksnap_snapshot_create.fields.id,
  createRequest: IOCTL_BLKSNAP_SNAPSHOT_CREATE,
  attachRequest: BLKFILTER_ATTACH,
  detachRequest: BLKFILTER_DETACH,
  ctlRequest: BLKFILTER_CTL,
  appendStorageRequest: null,
  // v6 defines only code 0; later versions send no_space as 1.
  eventCode1: 'no_space',
  imageDiskName: (major, minor) => `blksnap-image_${major}:${minor}`,
  encodeAttach: (_devpath, name) => encodeBlkfilterName(name),
  encodeDetach: (_devpath, name) => encodeBlkfilterName(name),
  encodeCtl: ({ name, cmd, optlen, opt }) => encodeBlkfilterCtl({ name, cmd, optlen, opt }),
};

const val7: KernelDialect = {
  name: 'val7',
  title: 'veeamblksnap VAL-7 (blksnap-dkms 7.x, Veeam Agent for Linux)',
  controlPath: '/dev/veeamblksnap',
  moduleName: 'veeamblksnap',
  filter: 'bdevfilter',
  filterControlPath: '/dev/bdevfilter',
  storage: 'path',
  createIdOffset: DIALECT_LAYOUT.blksnap_snapshot_create_path.fields.id,
  // same number as v6 (the struct size is 32 in both), different struct
  createRequest: IOCTL_BLKSNAP_SNAPSHOT_CREATE,
  attachRequest: VAL7_BDEVFILTER_ATTACH,
  detachRequest: VAL7_BDEVFILTER_DETACH,
  ctlRequest: VAL7_BDEVFILTER_CTL,
  appendStorageRequest: VAL7_IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE,
  eventCode1: 'low_free_space',
  imageDiskName: (major, minor) => `veeamblksnapimg_${major}:${minor}`,
  encodeAttach: (devpath, name) => encodeBdevfilterName(devpath, name),
  encodeDetach: (devpath, name) => encodeBdevfilterName(devpath, name),
  encodeCtl: (fields) => encodeBdevfilterCtl(fields),
};

const lk615: KernelDialect = {
  name: 'lk6.15',
  title: 'blksnap lk6.15 (patch set for Linux 6.15)',
  controlPath: '/dev/blksnap-control',
  moduleName: 'blksnap',
  filter: 'block-device',
  filterControlPath: null,
  storage: 'path',
  createIdOffset: DIALECT_LAYOUT.blksnap_snapshot_create_path.fields.id,
  createRequest: IOCTL_BLKSNAP_SNAPSHOT_CREATE,
  attachRequest: LK615_BLKFILTER_ATTACH,
  detachRequest: LK615_BLKFILTER_DETACH,
  ctlRequest: LK615_BLKFILTER_CTL,
  appendStorageRequest: null,
  eventCode1: 'no_space',
  imageDiskName: (major, minor) => `blksnap-${major}-${minor}`,
  encodeAttach: (_devpath, name) => encodeBlkfilterAttach(name),
  encodeDetach: (_devpath, name) => encodeBlkfilterDetach(name),
  encodeCtl: ({ name, cmd, optlen, opt }) => encodeBlkfilterCtl({ name, cmd, optlen, opt }),
};

export const DIALECTS: Readonly<Record<DialectName, KernelDialect>> = { v6, val7, 'lk6.15': lk615 };

export function isDialectName(value: string): value is DialectName {
  return (DIALECT_NAMES as readonly string[]).includes(value);
}
