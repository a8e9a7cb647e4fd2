/**
 * ioctl request numbers, computed the way <asm-generic/ioctl.h> does on x86_64:
 * dir << 30 | size << 16 | type << 8 | nr (dir: 0 none, 1 write, 2 read, 3 both).
 * The blksnap numbers are those of the v6 uapi header (seed 000): v6 dropped
 * append_storage, so take/collect/wait_event moved down by one against v5.
 */
import { LAYOUT } from './abi-structs.js';

export const IOC_NONE = 0;
export const IOC_WRITE = 1;
export const IOC_READ = 2;

const NR_BITS = 8;
const TYPE_BITS = 8;
const SIZE_BITS = 14;

/** _IOC(dir, type, nr, size) as an unsigned 32-bit number. */
export function ioc(dir: number, type: number, nr: number, size: number): number {
  if (dir < 0 || dir > 3) throw new RangeError(`ioctl direction ${dir} out of range`);
  if (type < 0 || type >= 1 << TYPE_BITS) throw new RangeError(`ioctl type ${type} out of range`);
  if (nr < 0 || nr >= 1 << NR_BITS) throw new RangeError(`ioctl nr ${nr} out of range`);
  if (size < 0 || size >= 1 << SIZE_BITS) throw new RangeError(`ioctl size ${size} out of range`);
  // Multiplication instead of << keeps the result unsigned (dir 3 << 30 overflows int32).
  return dir * 2 ** 30 + size * 2 ** 16 + type * 2 ** 8 + nr;
}

export const io = (type: number, nr: number): number => ioc(IOC_NONE, type, nr, 0);
export const ior = (type: number, nr: number, size: number): number => ioc(IOC_READ, type, nr, size);
export const iow = (type: number, nr: number, size: number): number => ioc(IOC_WRITE, type, nr, size);
export const iowr = (type: number, nr: number, size: number): number =>
  ioc(IOC_READ | IOC_WRITE, type, nr, size);

/** _IOC_NR / _IOC_TYPE / _IOC_SIZE / _IOC_DIR */
export const iocNr = (req: number): number => req & 0xff;
export const iocType = (req: number): number => Math.floor(req / 2 ** 8) & 0xff;
export const iocSize = (req: number): number => Math.floor(req / 2 ** 16) & 0x3fff;
export const iocDir = (req: number): number => Math.floor(req / 2 ** 30) & 0x3;

/** #define BLKSNAP 'V' */
export const BLKSNAP_IOCTL_TYPE = 'V'.charCodeAt(0);
/** Block-layer ioctls use type 0x12. */
export const BLOCK_IOCTL_TYPE = 0x12;

/** enum blksnap_ioctl (v6) */
export const BLKSNAP_IOCTL_NR = {
  version: 0,
  snapshot_create: 1,
  snapshot_destroy: 2,
  snapshot_take: 3,
  snapshot_collect: 4,
  snapshot_wait_event: 5,
} as const;

export const IOCTL_BLKSNAP_VERSION = ior(BLKSNAP_IOCTL_TYPE, BLKSNAP_IOCTL_NR.version, LAYOUT.blksnap_version.size);
export const IOCTL_BLKSNAP_SNAPSHOT_CREATE = iowr(
  BLKSNAP_IOCTL_TYPE,
  BLKSNAP_IOCTL_NR.snapshot_create,
  LAYOUT.blksnap_snapshot_create.size,
);
export const IOCTL_BLKSNAP_SNAPSHOT_DESTROY = iow(
  BLKSNAP_IOCTL_TYPE,
  BLKSNAP_IOCTL_NR.snapshot_destroy,
  LAYOUT.blksnap_uuid.size,
);
export const IOCTL_BLKSNAP_SNAPSHOT_TAKE = iow(BLKSNAP_IOCTL_TYPE, BLKSNAP_IOCTL_NR.snapshot_take, LAYOUT.blksnap_uuid.size);
export const IOCTL_BLKSNAP_SNAPSHOT_COLLECT = ior(
  BLKSNAP_IOCTL_TYPE,
  BLKSNAP_IOCTL_NR.snapshot_collect,
  LAYOUT.blksnap_snapshot_collect.size,
);
export const IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT = ior(
  BLKSNAP_IOCTL_TYPE,
  BLKSNAP_IOCTL_NR.snapshot_wait_event,
  LAYOUT.blksnap_snapshot_event.size,
);

/** include/uapi/linux/fs.h additions of the blkfilter patch (seed 001). */
export const BLKFILTER_ATTACH = iowr(BLOCK_IOCTL_TYPE, 140, LAYOUT.blkfilter_name.size);
export const BLKFILTER_DETACH = iowr(BLOCK_IOCTL_TYPE, 141, LAYOUT.blkfilter_name.size);
export const BLKFILTER_CTL = iowr(BLOCK_IOCTL_TYPE, 142, LAYOUT.blkfilter_ctl.size);

/** Standard block ioctls (linux/fs.h). BLKGETSIZE64 is _IOR(0x12,114,size_t). */
export const SIZEOF_SIZE_T = 8;
export const BLKSSZGET = io(BLOCK_IOCTL_TYPE, 104);
export const BLKGETSIZE64 = ior(BLOCK_IOCTL_TYPE, 114, SIZEOF_SIZE_T);
export const BLKPBSZGET = io(BLOCK_IOCTL_TYPE, 123);

/** Every request number by its C macro name (for the ABI test and for messages). */
export const IOCTL_NUMBERS = {
  IOCTL_BLKSNAP_VERSION,
  IOCTL_BLKSNAP_SNAPSHOT_CREATE,
  IOCTL_BLKSNAP_SNAPSHOT_DESTROY,
  IOCTL_BLKSNAP_SNAPSHOT_TAKE,
  IOCTL_BLKSNAP_SNAPSHOT_COLLECT,
  IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT,
  BLKFILTER_ATTACH,
  BLKFILTER_DETACH,
  BLKFILTER_CTL,
  BLKGETSIZE64,
  BLKSSZGET,
  BLKPBSZGET,
} as const;

export type IoctlName = keyof typeof IOCTL_NUMBERS;

const NAME_BY_NUMBER = new Map<number, IoctlName>(
  (Object.entries(IOCTL_NUMBERS) as [IoctlName, number][]).map(([name, num]) => [num, name]),
);

/** The macro name of a request number, or its hex form. */
export function ioctlName(request: number): string {
  return NAME_BY_NUMBER.get(request) ?? `0x${request.toString(16)}`;
}
