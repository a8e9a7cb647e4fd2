/**
 * An IoctlLayer that simulates the blksnap module and the block-device filter in
 * each ABI dialect (v6; VAL-7.0 with /dev/bdevfilter; lk6.15) for tests of the
 * kernel driver. The VAL-7.0 and lk6.15 structs are decoded here from the byte
 * offsets and request numbers of the dialect spec (DIALECT_SPEC below, written out,
 * not taken from the driver), so a wrong driver layout fails. For v6 it: it decodes the request structs byte for
 * byte, follows pointer fields through the synthetic addresses of its own alloc(),
 * and writes results back the way the module does (seed 000 header; seed 001
 * blk-filter.c, tracker.c, cbt_map.c, snapshot.c, event_queue.c). Paths that are
 * neither the control device nor a registered fake device are opened for real
 * (the difference-storage file).
 */
import { randomUUID } from 'node:crypto';
import { close as fsClose, closeSync, fstatSync, open as fsOpen, openSync, readFileSync, statSync, constants as fsConstants } from 'node:fs';
import { BlksnapError, ERRNO } from '../../../engine/abi/errno.js';
import type { ErrnoName } from '../../../engine/abi/errno.js';
import type { BlksnapVersion } from '../../../engine/abi/types.js';
import { splitDevT } from '../../../engine/abi/dev-t.js';
import { SECTOR_SHIFT, SECTOR_SIZE } from '../../../engine/abi/types.js';
import {
  BLKFILTER_CTL_BLKSNAP,
  BLKSNAP_EVENT_CODE,
  BLKSNAP_FILTER_NAME,
  LAYOUT,
  SNAPSHOT_EVENT_DATA_SIZE,
  decodeBlkfilterCtl,
  decodeBlkfilterName,
  decodeCbtDirty,
  decodeCbtMap,
  decodeSectors,
  decodeSnapshotAdd,
  decodeSnapshotCollect,
  decodeSnapshotCreate,
  decodeSnapshotEvent,
  decodeUuid,
  encodeCbtInfo,
  encodeEventCorrupted,
  encodeEventNoSpace,
  encodeSnapshotCollect,
  encodeSnapshotInfo,
  encodeUuid,
  encodeVersion,
} from '../../../engine/kernel/abi-structs.js';
import { archFlags } from '../../../engine/helper/native-fs.js';
import type { IoctlLayer, NativeMemory } from '../../../engine/kernel/ioctl-layer.js';
import { fsError, ioctlError } from '../../../engine/kernel/ioctl-layer.js';
import { FIEMAP_EXTENT, FIEMAP_EXTENT_SIZE, FIEMAP_HEADER_SIZE, FS_IOC_FIEMAP } from '../../../engine/kernel/fiemap.js';
import type { FileExtent } from '../../../engine/kernel/fiemap.js';
import { FS_IMMUTABLE_FL, FS_IOC_FSGETXATTR, FS_IOC_GETFLAGS, FS_IOC_SETFLAGS } from '../../../engine/kernel/mapped-storage.js';
import {
  BLKFILTER_ATTACH,
  BLKFILTER_CTL,
  BLKFILTER_DETACH,
  BLKGETSIZE64,
  BLKPBSZGET,
  BLKSSZGET,
  IOCTL_BLKSNAP_SNAPSHOT_COLLECT,
  IOCTL_BLKSNAP_SNAPSHOT_CREATE,
  IOCTL_BLKSNAP_SNAPSHOT_DESTROY,
  IOCTL_BLKSNAP_SNAPSHOT_TAKE,
  IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT,
  IOCTL_BLKSNAP_VERSION,
  iocSize,
} from '../../../engine/kernel/ioctl-numbers.js';

export type FakeDialect = 'v6' | 'val7' | 'lk6.15';

/**
 * Per-dialect facts from /work/shared/specs/blksnap-abi-dialects.md, written out:
 * device names, request numbers (sections 1, 2, 5) and image names.
 */
export const DIALECT_SPEC = {
  v6: {
    control: '/dev/blksnap-control',
    bdevfilter: null,
    attach: 0xc020128c,
    detach: 0xc020128d,
    ctl: 0xc030128e,
    appendStorage: null,
    createIdOffset: 12,
    image: (mj: number, mn: number) => `blksnap-image_${mj}:${mn}`,
  },
  val7: {
    control: '/dev/veeamblksnap',
    bdevfilter: '/dev/bdevfilter',
    attach: 0xc028468c,
    detach: 0xc028468d,
    ctl: 0xc038468e,
    appendStorage: 0x40285622,
    createIdOffset: 16,
    image: (mj: number, mn: number) => `veeamblksnapimg_${mj}:${mn}`,
  },
  'lk6.15': {
    control: '/dev/blksnap-control',
    bdevfilter: null,
    attach: 0xc030128e,
    detach: 0xc020128f,
    ctl: 0xc0301290,
    appendStorage: null,
    createIdOffset: 16,
    image: (mj: number, mn: number) => `blksnap-${mj}-${mn}`,
  },
} as const;

/** Module parameters of seed 001 main.c that shape the CBT map. */
const TRACKING_BLOCK_MINIMUM_SHIFT = 16;
const TRACKING_BLOCK_MAXIMUM_SHIFT = 26;
const TRACKING_BLOCK_MAXIMUM_COUNT = 2097152;

export interface FakeDeviceSpec {
  path: string;
  /** Bytes, a multiple of 512. */
  capacity: number;
  major: number;
  minor: number;
  logicalBlockSize?: number;
  physicalBlockSize?: number;
}

interface FakeTracker {
  capacitySectors: number;
  blkSizeShift: number;
  blkCount: number;
  readMap: Uint8Array;
  writeMap: Uint8Array;
  snapNumberActive: number;
  snapNumberPrevious: number;
  generationId: string;
  snapshotId: string | null;
  imageName: string;
  errorCode: number;
}

interface FakeDevice extends FakeDeviceSpec {
  tracker: FakeTracker | null;
}

interface FakeEvent {
  code: number;
  timeLabel: bigint;
  data: Buffer;
}

/** Size in sectors of a block device of this machine, from sysfs. */
function blockDeviceSectors(rdev: number): number {
  const { major, minor } = splitDevT(rdev);
  return Number(readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim());
}

/** VAL-7.0 main.c: diff_storage_minimum, in sectors (1 GiB). */
const VAL7_DIFF_STORAGE_MINIMUM = 2097152;

interface FakeSnapshot {
  id: string;
  storageFd: number;
  /** The storage path as the module got it (path dialects), and the inode it opened. */
  storagePath: string | null;
  storageIno: number;
  /** Ranges given by append_storage (VAL-7.0). */
  appended: { devpath: string; ranges: { offset: number; count: number }[] }[];
  limitSectors: number;
  devices: FakeDevice[];
  taken: boolean;
  events: FakeEvent[];
  waiters: Set<() => void>;
}

type OpenFile =
  | { kind: 'control' }
  | { kind: 'bdevfilter' }
  | { kind: 'device'; device: FakeDevice }
  | { kind: 'file'; path: string };

export interface FakeIoctlCall {
  fd: number;
  request: number;
  /** The filter ctl command, when request is a filter CTL. */
  cmd?: number;
  /** The device path named in a /dev/bdevfilter request (VAL-7.0). */
  devpath?: string;
}

export interface FakeIoctlLayerOptions {
  /** The ABI the fake module speaks. Default v6. */
  dialect?: FakeDialect;
  controlPath?: string;
  /** false: opening the control device fails with ENOENT (module not loaded). */
  moduleLoaded?: boolean;
  version?: BlksnapVersion;
  /**
   * At most this many bytes copied by one cbtmap command (default: all asked for).
   * The v6 header has cbtmap return the count of bytes read and the caller go on
   * from there, so a module may answer with fewer bytes than asked.
   */
  maxCbtMapRead?: number;
}

const FAKE_FD_BASE = 100_000;
const FAKE_ADDRESS_BASE = 0x7f00_0000_0000n;

function fail(errno: ErrnoName): never {
  // Thrown inside the simulation, turned into an ioctlError (as -errno) by ioctl().
  throw new FakeErrno(errno);
}

class FakeErrno extends Error {
  constructor(readonly errno: ErrnoName) {
    super(errno);
  }
}

export class FakeIoctlLayer implements IoctlLayer {
  readonly dialect: FakeDialect;
  readonly controlPath: string;
  moduleLoaded: boolean;
  readonly moduleVersion: BlksnapVersion;
  /** Every ioctl issued, in order. */
  readonly calls: FakeIoctlCall[] = [];

  private readonly devices = new Map<string, FakeDevice>();
  private readonly files = new Map<number, OpenFile>();
  /** v6 storage descriptors the caller closed while a snapshot still holds them (closed at destroy). */
  private readonly closedByCaller = new Set<number>();
  private nextFd = FAKE_FD_BASE;
  private readonly memory = new Map<bigint, Buffer>();
  private nextAddress = FAKE_ADDRESS_BASE;
  private readonly snapshots: FakeSnapshot[] = [];
  private readonly maxCbtMapRead: number;
  /** Inode flags (chattr) by inode number, as FS_IOC_GETFLAGS/SETFLAGS see them. */
  private readonly inodeFlags = new Map<number, number>();
  /**
   * What FS_IOC_FIEMAP answers for a file of `size` bytes (inode `ino`); default: one
   * unwritten extent (as fallocate leaves it) at 1 MiB x (ino mod 1000 + 1) on the device.
   * An ErrnoName fails the call with it.
   */
  fiemapAnswer: (size: number, ino: number) => FileExtent[] | ErrnoName = (size, ino) => [
    { logical: 0, physical: (1 + (ino % 1000)) * 1024 * 1024, length: Math.ceil(size / 4096) * 4096, flags: FIEMAP_EXTENT.unwritten | FIEMAP_EXTENT.last },
  ];
  /** An errno FS_IOC_SETFLAGS fails with (no CAP_LINUX_IMMUTABLE: EPERM), or null. */
  setFlagsErrno: ErrnoName | null = null;
  /** fsx_xflags FS_IOC_FSGETXATTR answers (FS_XFLAG_REALTIME 0x1: an XFS realtime file). */
  xflags = 0;

  constructor(options: FakeIoctlLayerOptions = {}) {
    this.dialect = options.dialect ?? 'v6';
    this.controlPath = options.controlPath ?? DIALECT_SPEC[this.dialect].control;
    this.moduleLoaded = options.moduleLoaded ?? true;
    this.moduleVersion = options.version ?? { major: 2, minor: 0, revision: 0, build: 0 };
    this.maxCbtMapRead = options.maxCbtMapRead ?? Infinity;
  }

  // ---- test controls -------------------------------------------------------

  addDevice(spec: FakeDeviceSpec): void {
    if (spec.capacity % SECTOR_SIZE !== 0) throw new Error('fake device capacity must be a multiple of 512');
    this.devices.set(spec.path, { ...spec, tracker: null });
  }

  /** The difference storage of a snapshot as the module holds it. */
  storageOf(id: string): { path: string | null; ino: number; appended: FakeSnapshot['appended'] } {
    const s = this.snapshotById(id);
    if (!s) throw new Error(`no fake snapshot ${id}`);
    return { path: s.storagePath, ino: s.storageIno, appended: s.appended };
  }

  /** True when the file open as `fd` has FS_IMMUTABLE_FL. */
  isImmutable(fd: number): boolean {
    return ((this.inodeFlags.get(fstatSync(fd).ino) ?? 0) & FS_IMMUTABLE_FL) !== 0;
  }

  /** Number of descriptors open through this layer (leak checks). */
  get openCount(): number {
    return this.files.size;
  }

  /** Bytes allocated and not freed (leak checks). */
  get liveAllocations(): number {
    return this.memory.size;
  }

  /** Changes a fake device's capacity (the tracker notices at the next take). */
  resize(path: string, capacity: number): void {
    this.device(path).capacity = capacity;
  }

  /** A write to a tracked device, as tracker_submit_bio sees it: marks the CBT write map. */
  write(path: string, sector: number, count: number): void {
    const tracker = this.device(path).tracker;
    if (!tracker) return;
    setMap(tracker, sector, count, tracker.snapNumberActive, tracker.writeMap);
  }

  /** Queues an event on a snapshot, as event_gen does. */
  queueEvent(id: string, code: number, data: Uint8Array): void {
    const snapshot = this.snapshots.find((s) => s.id === id);
    if (!snapshot) throw new Error(`no fake snapshot ${id}`);
    snapshot.events.push({ code, timeLabel: process.hrtime.bigint(), data: Buffer.from(data) });
    for (const wake of snapshot.waiters) wake();
  }

  /**
   * The difference storage ran out: a no_space event for the request, then each
   * device's image is marked corrupted (-ENOSPC) with a corrupted event (err_code +ENOSPC, as the modules send it).
   */
  overflow(id: string, requestedSectors: number): void {
    this.queueEvent(id, BLKSNAP_EVENT_CODE.no_space, encodeEventNoSpace(requestedSectors));
    const snapshot = this.snapshots.find((s) => s.id === id);
    for (const device of snapshot?.devices ?? []) {
      if (device.tracker) device.tracker.errorCode = -ERRNO.ENOSPC;
      this.queueEvent(
        id,
        BLKSNAP_EVENT_CODE.corrupted,
        // diff_area.c sends abs(error): +ENOSPC in the event, -ENOSPC in snapshotinfo
        encodeEventCorrupted({ devIdMj: device.major, devIdMn: device.minor, errCode: ERRNO.ENOSPC }),
      );
    }
  }

  // ---- IoctlLayer ----------------------------------------------------------

  async open(path: string, flags: number, mode = 0o600): Promise<number> {
    if (path === this.controlPath) {
      if (!this.moduleLoaded) throw new BlksnapError('ENOENT', `cannot open ${path}`);
      return this.fakeFd({ kind: 'control' });
    }
    if (path === DIALECT_SPEC[this.dialect].bdevfilter) return this.fakeFd({ kind: 'bdevfilter' });
    const device = this.devices.get(path);
    if (device) return this.fakeFd({ kind: 'device', device });
    const fd = await new Promise<number>((resolve, reject) => {
      fsOpen(path, flags, mode, (err, result) => (err ? reject(fsError(err, `cannot open ${path}`)) : resolve(result)));
    });
    this.files.set(fd, { kind: 'file', path });
    return fd;
  }

  async close(fd: number): Promise<void> {
    const file = this.files.get(fd) ?? this.handedOver(fd);
    if (!file) throw new BlksnapError('EBADF', `fd ${fd} is not open`);
    this.files.delete(fd);
    // a v6 snapshot holds its storage file (fget): it stays open until destroy
    if (this.snapshots.some((s) => s.storagePath === null && s.storageFd === fd)) {
      this.closedByCaller.add(fd);
      return;
    }
    if (file.kind === 'file') {
      await new Promise<void>((resolve, reject) => {
        fsClose(fd, (err) => (err ? reject(fsError(err, `cannot close fd ${fd}`)) : resolve()));
      });
    }
  }

  alloc(size: number): NativeMemory {
    if (!Number.isInteger(size) || size <= 0) throw new BlksnapError('EINVAL', `cannot allocate ${size} bytes`);
    const address = this.nextAddress;
    // Page-separated regions, so an overrun never lands in a neighbour.
    this.nextAddress += BigInt(Math.ceil((size + 1) / 4096) * 4096);
    const buffer = Buffer.alloc(size);
    this.memory.set(address, buffer);
    return { buffer, address };
  }

  free(mem: NativeMemory): void {
    this.memory.delete(mem.address);
  }

  async ioctl(fd: number, request: number, arg: Buffer): Promise<number> {
    const file = this.files.get(fd) ?? this.handedOver(fd);
    const call: FakeIoctlCall = { fd, request };
    this.calls.push(call);
    try {
      if (!file) fail('EBADF');
      // copy_from_user of _IOC_SIZE bytes: a short buffer faults.
      if (arg.length < iocSize(request)) fail('EFAULT');
      if (file.kind === 'control') return await this.controlIoctl(request, arg);
      if (file.kind === 'bdevfilter') return this.bdevfilterIoctl(request, arg, call);
      if (file.kind === 'device') {
        if (this.dialect === 'val7') return this.blockIoctl(file.device, request, arg);
        if (this.dialect === 'lk6.15') return this.lk615DeviceIoctl(file.device, request, arg, call);
        return this.deviceIoctl(file.device, request, arg, call);
      }
      return this.fileIoctl(fd, request, arg);
    } catch (err) {
      if (err instanceof FakeErrno) throw ioctlError(ERRNO[err.errno], request, `fd ${fd}`);
      throw err;
    }
  }

  // ---- simulation ----------------------------------------------------------

  /** A regular file's ioctls: FIEMAP (fiemapAnswer) and the inode flags. */
  private fileIoctl(fd: number, request: number, arg: Buffer): number {
    const st = fstatSync(fd);
    switch (request) {
      case FS_IOC_FIEMAP: {
        const answer = this.fiemapAnswer(st.size, st.ino);
        if (typeof answer === 'string') fail(answer);
        const start = Number(arg.readBigUInt64LE(0));
        const room = arg.readUInt32LE(24);
        const from = answer.filter((e) => e.logical + e.length > start).slice(0, room);
        arg.writeUInt32LE(from.length, 20);
        from.forEach((e, i) => {
          const o = FIEMAP_HEADER_SIZE + i * FIEMAP_EXTENT_SIZE;
          arg.writeBigUInt64LE(BigInt(e.logical), o);
          arg.writeBigUInt64LE(BigInt(e.physical), o + 8);
          arg.writeBigUInt64LE(BigInt(e.length), o + 16);
          arg.writeUInt32LE(e.flags, o + 40);
        });
        return 0;
      }
      case FS_IOC_GETFLAGS:
        arg.writeUInt32LE(this.inodeFlags.get(st.ino) ?? 0, 0);
        return 0;
      case FS_IOC_FSGETXATTR:
        arg.writeUInt32LE(this.xflags, 0);
        return 0;
      case FS_IOC_SETFLAGS:
        if (this.setFlagsErrno) fail(this.setFlagsErrno);
        this.inodeFlags.set(st.ino, arg.readUInt32LE(0));
        return 0;
      default:
        fail('ENOTTY');
    }
  }

  /**
   * A real descriptor the caller opened itself (the helper's checked storage, handed
   * over as diffStorageFd), as the koffi layer would see it: a file of this process.
   */
  private handedOver(fd: number): OpenFile | undefined {
    if (fd >= FAKE_FD_BASE) return undefined;
    try {
      fstatSync(fd);
    } catch {
      return undefined;
    }
    const file: OpenFile = { kind: 'file', path: `/proc/self/fd/${fd}` };
    this.files.set(fd, file);
    return file;
  }

  private fakeFd(file: OpenFile): number {
    const fd = this.nextFd++;
    this.files.set(fd, file);
    return fd;
  }

  private device(path: string): FakeDevice {
    const device = this.devices.get(path);
    if (!device) throw new Error(`no fake device ${path}`);
    return device;
  }

  /** copy_from_user / copy_to_user through a user pointer: the bytes at [address, address+length). */
  private user(address: bigint, length: number): Buffer {
    if (address === 0n) fail('EFAULT');
    for (const [base, buffer] of this.memory) {
      if (address >= base && address + BigInt(length) <= base + BigInt(buffer.length)) {
        const start = Number(address - base);
        return buffer.subarray(start, start + length);
      }
    }
    fail('EFAULT');
  }

  private snapshotById(id: string): FakeSnapshot | undefined {
    return this.snapshots.find((s) => s.id === id);
  }

  private async controlIoctl(request: number, arg: Buffer): Promise<number> {
    switch (request) {
      case IOCTL_BLKSNAP_VERSION:
        arg.set(encodeVersion(this.moduleVersion));
        return 0;
      case IOCTL_BLKSNAP_SNAPSHOT_CREATE: {
        if (this.dialect !== 'v6') return this.createByPath(arg);
        const req = decodeSnapshotCreate(arg);
        const file = this.files.get(req.diffStorageFd) ?? this.handedOver(req.diffStorageFd);
        if (!file || file.kind !== 'file') fail('EBADF');
        const st = fstatSync(req.diffStorageFd);
        if (!st.isFile() && !st.isBlockDevice()) fail('EINVAL');
        const id = randomUUID();
        this.snapshots.push({
          id,
          storageFd: req.diffStorageFd,
          storagePath: null,
          storageIno: st.ino,
          appended: [],
          limitSectors: req.diffStorageLimitSect,
          devices: [],
          taken: false,
          events: [],
          waiters: new Set(),
        });
        encodeUuid(id).copy(arg, LAYOUT.blksnap_snapshot_create.fields.id);
        return 0;
      }
      case IOCTL_BLKSNAP_SNAPSHOT_DESTROY: {
        const id = decodeUuid(arg);
        const index = this.snapshots.findIndex((s) => s.id === id);
        if (index < 0) fail('ENODEV');
        const [snapshot] = this.snapshots.splice(index, 1);
        if (snapshot !== undefined && snapshot.storageFd >= 0) {
          if (snapshot.storagePath !== null) closeSync(snapshot.storageFd);
          else if (this.closedByCaller.delete(snapshot.storageFd)) closeSync(snapshot.storageFd);
        }
        for (const device of snapshot?.devices ?? []) {
          if (device.tracker) {
            device.tracker.snapshotId = null;
            device.tracker.imageName = '';
          }
        }
        return 0;
      }
      case IOCTL_BLKSNAP_SNAPSHOT_TAKE: {
        const snapshot = this.snapshotById(decodeUuid(arg));
        if (!snapshot) fail('ESRCH');
        if (snapshot.taken) fail('EALREADY');
        if (snapshot.devices.length === 0) fail('ENODEV');
        for (const device of snapshot.devices) {
          let tracker = device.tracker;
          if (!tracker) continue;
          const capacitySectors = device.capacity / SECTOR_SIZE;
          // tracker_take_snapshot: a resized device gets a new map (new generation).
          if (tracker.capacitySectors !== capacitySectors) {
            tracker = newTracker(capacitySectors, tracker);
            device.tracker = tracker;
          }
          switchMap(tracker);
          // snapimage.c: disk_name is "%s_%d:%d" of BLKSNAP_IMAGE_NAME and the original device number.
          tracker.imageName = DIALECT_SPEC[this.dialect].image(device.major, device.minor);
          tracker.errorCode = 0;
        }
        snapshot.taken = true;
        return 0;
      }
      case IOCTL_BLKSNAP_SNAPSHOT_COLLECT: {
        const req = decodeSnapshotCollect(arg);
        let ret = 0;
        let count = 0;
        if (req.ids === 0n) {
          count = this.snapshots.length;
        } else {
          for (const s of this.snapshots) {
            if (count >= req.count) {
              ret = -ERRNO.ENODATA;
              break;
            }
            encodeUuid(s.id).copy(this.user(req.ids + BigInt(count * LAYOUT.blksnap_uuid.size), LAYOUT.blksnap_uuid.size));
            count++;
          }
        }
        arg.set(encodeSnapshotCollect({ count, ids: req.ids }));
        if (ret) fail('ENODATA');
        return 0;
      }
      case IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT: {
        const req = decodeSnapshotEvent(arg);
        const snapshot = this.snapshotById(req.id);
        if (!snapshot) fail('ESRCH');
        if (snapshot.events.length === 0) await waitForEvent(snapshot, req.timeoutMs);
        const event = snapshot.events.shift();
        if (!event) fail('ENOENT');
        const f = LAYOUT.blksnap_snapshot_event.fields;
        arg.writeUInt32LE(event.code, f.code);
        arg.writeBigInt64LE(event.timeLabel, f.time_label);
        arg.fill(0, f.data, f.data + SNAPSHOT_EVENT_DATA_SIZE);
        event.data.copy(arg, f.data);
        return 0;
      }
      default:
        if (request === DIALECT_SPEC[this.dialect].appendStorage) return this.appendStorage(arg);
        fail('ENOTTY');
    }
  }

  /** A NUL-terminated string at a user address (strndup_user). */
  private userString(address: bigint): string {
    if (address === 0n) fail('EFAULT');
    for (const [base, buffer] of this.memory) {
      if (address >= base && address < base + BigInt(buffer.length)) {
        const bytes = buffer.subarray(Number(address - base));
        const end = bytes.indexOf(0);
        if (end < 0) fail('EFAULT');
        return bytes.subarray(0, end).toString('utf8');
      }
    }
    fail('EFAULT');
  }

  /**
   * VAL-7.0 / lk6.15 snapshot_create (spec section 3): u64 limit at 0, u64 path
   * pointer at 8, id written at 16. The module opens the path itself.
   */
  private createByPath(arg: Buffer): number {
    const limitSectors = Number(arg.readBigUInt64LE(0));
    // VAL-7.0 (BLKSNAP_MODIFICATION): a NULL path creates a snapshot without storage,
    // which asks for min(diff_storage_minimum, limit) sectors at once (diff_storage_set)
    if (arg.readBigUInt64LE(8) === 0n && this.dialect === 'val7') return this.createAppendable(arg, limitSectors);
    const path = this.userString(arg.readBigUInt64LE(8));
    // diff_storage_set(): what the path names decides how it is opened
    let fd: number;
    try {
      const kind = statSync(path);
      if (kind.isBlockDevice()) fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_EXCL); // exclusively
      else if (kind.isDirectory()) fd = openSync(path, fsConstants.O_RDWR | archFlags().O_TMPFILE, 0o600); // an unnamed file in it
      else fd = openSync(path, fsConstants.O_RDWR);
    } catch (err) {
      fail(((err as NodeJS.ErrnoException).code as ErrnoName | undefined) ?? 'EIO');
    }
    const st = fstatSync(fd);
    if (!st.isFile() && !st.isBlockDevice()) {
      closeSync(fd);
      fail('EINVAL');
    }
    // diff_storage_set(): the existing size is the capacity; up to half of
    // diff_storage_minimum it may not exceed the limit (-ENOSPC)
    const capacity = st.isBlockDevice() ? blockDeviceSectors(st.rdev) : Math.floor(st.size / 512);
    if (capacity <= VAL7_DIFF_STORAGE_MINIMUM / 2 && capacity > limitSectors) {
      closeSync(fd);
      fail('ENOSPC');
    }
    const id = randomUUID();
    this.snapshots.push({
      id,
      storageFd: fd,
      storagePath: path,
      storageIno: st.ino,
      appended: [],
      limitSectors,
      devices: [],
      taken: false,
      events: [],
      waiters: new Set(),
    });
    encodeUuid(id).copy(arg, DIALECT_SPEC[this.dialect].createIdOffset);
    return 0;
  }

  private createAppendable(arg: Buffer, limitSectors: number): number {
    const id = randomUUID();
    this.snapshots.push({
      id,
      storageFd: -1,
      storagePath: null,
      storageIno: 0,
      appended: [],
      limitSectors,
      devices: [],
      taken: false,
      events: [],
      waiters: new Set(),
    });
    encodeUuid(id).copy(arg, DIALECT_SPEC[this.dialect].createIdOffset);
    this.queueEvent(id, BLKSNAP_EVENT_CODE.no_space, encodeEventNoSpace(Math.min(VAL7_DIFF_STORAGE_MINIMUM, limitSectors)));
    return 0;
  }

  /** VAL-7.0 append_storage (spec section 3): id 0, devpath u64 16, count u32 24, ranges u64 32. */
  private appendStorage(arg: Buffer): number {
    const snapshot = this.snapshotById(decodeUuid(arg, 0));
    // snapshot_append_storage: an unknown id is -ESRCH (measured in the VM test)
    if (!snapshot) fail('ESRCH');
    const devpath = this.userString(arg.readBigUInt64LE(16));
    const count = arg.readUInt32LE(24);
    const ranges: { offset: number; count: number }[] = [];
    const base = arg.readBigUInt64LE(32);
    for (let i = 0; i < count; i++) {
      const r = this.user(base + BigInt(i * 16), 16);
      ranges.push({ offset: Number(r.readBigUInt64LE(0)), count: Number(r.readBigUInt64LE(8)) });
    }
    snapshot.appended.push({ devpath, ranges });
    return 0;
  }

  /** The block device's own ioctls (size queries); filter numbers are unknown (VAL-7.0 on a stock kernel). */
  private blockIoctl(device: FakeDevice, request: number, arg: Buffer): number {
    switch (request) {
      case BLKGETSIZE64:
        arg.writeBigUInt64LE(BigInt(device.capacity), 0);
        return 0;
      case BLKSSZGET:
        arg.writeInt32LE(device.logicalBlockSize ?? SECTOR_SIZE, 0);
        return 0;
      case BLKPBSZGET:
        arg.writeUInt32LE(device.physicalBlockSize ?? device.logicalBlockSize ?? SECTOR_SIZE, 0);
        return 0;
      default:
        fail('ENOTTY');
    }
  }

  private attachTracker(device: FakeDevice, name: string): number {
    if (name !== BLKSNAP_FILTER_NAME) fail('ENOENT');
    if (device.tracker) fail('EALREADY');
    device.tracker = newTracker(device.capacity / SECTOR_SIZE);
    return 0;
  }

  private detachTracker(device: FakeDevice, name: string): number {
    if (!device.tracker) fail('ENOENT');
    if (name !== BLKSNAP_FILTER_NAME) fail('EINVAL');
    device.tracker = null;
    return 0;
  }

  /**
   * VAL-7.0 /dev/bdevfilter (spec section 5): 'F' ioctls naming the device by a path
   * pointer at 0; name[32] at 8; ctl: cmd 40, optlen 44, opt 48.
   */
  private bdevfilterIoctl(request: number, arg: Buffer, call: FakeIoctlCall): number {
    const spec = DIALECT_SPEC.val7;
    if (request !== spec.attach && request !== spec.detach && request !== spec.ctl) fail('ENOTTY');
    const devpath = this.userString(arg.readBigUInt64LE(0));
    call.devpath = devpath;
    const device = this.devices.get(devpath);
    if (!device) fail('ENOENT');
    const name = cString(arg, 8, 32);
    if (request === spec.attach) return this.attachTracker(device, name);
    if (request === spec.detach) return this.detachTracker(device, name);
    const cmd = arg.readUInt32LE(40);
    call.cmd = cmd;
    if (!device.tracker || name !== BLKSNAP_FILTER_NAME) fail('ENOENT');
    return this.filterCtl(device, device.tracker, cmd, arg.readBigUInt64LE(48), arg.readUInt32LE(44));
  }

  /**
   * lk6.15 filter ioctls on the block device (spec section 5): ATTACH 0xc030128e
   * (blkfilter_attach: name 0, opt 32, optlen 40), DETACH 0xc020128f (name 0),
   * CTL 0xc0301290 (name 0, cmd 32, optlen 36, opt 40). v6's CTL number is ATTACH here.
   */
  private lk615DeviceIoctl(device: FakeDevice, request: number, arg: Buffer, call: FakeIoctlCall): number {
    const spec = DIALECT_SPEC['lk6.15'];
    switch (request) {
      case spec.attach:
        return this.attachTracker(device, cString(arg, 0, 32));
      case spec.detach:
        return this.detachTracker(device, cString(arg, 0, 32));
      case spec.ctl: {
        const cmd = arg.readUInt32LE(32);
        call.cmd = cmd;
        if (!device.tracker || cString(arg, 0, 32) !== BLKSNAP_FILTER_NAME) fail('ENOENT');
        return this.filterCtl(device, device.tracker, cmd, arg.readBigUInt64LE(40), arg.readUInt32LE(36));
      }
      default:
        return this.blockIoctl(device, request, arg);
    }
  }

  private deviceIoctl(device: FakeDevice, request: number, arg: Buffer, call: FakeIoctlCall): number {
    switch (request) {
      case BLKFILTER_ATTACH: {
        if (decodeBlkfilterName(arg) !== BLKSNAP_FILTER_NAME) fail('ENOENT');
        if (device.tracker) fail('EALREADY');
        device.tracker = newTracker(device.capacity / SECTOR_SIZE);
        return 0;
      }
      case BLKFILTER_DETACH: {
        if (!device.tracker) fail('ENOENT');
        if (decodeBlkfilterName(arg) !== BLKSNAP_FILTER_NAME) fail('EINVAL');
        // blkfilter_ioctl_detach never refuses: a tracker in a snapshot is detached
        // too (the snapshot keeps its reference); the driver has to guard against it.
        device.tracker = null;
        return 0;
      }
      case BLKFILTER_CTL: {
        const ctl = decodeBlkfilterCtl(arg);
        call.cmd = ctl.cmd;
        if (!device.tracker || ctl.name !== BLKSNAP_FILTER_NAME) fail('ENOENT');
        return this.filterCtl(device, device.tracker, ctl.cmd, ctl.opt, ctl.optlen);
      }
      default:
        return this.blockIoctl(device, request, arg);
    }
  }

  private filterCtl(device: FakeDevice, tracker: FakeTracker, cmd: number, opt: bigint, optlen: number): number {
    const sized = (size: number): Buffer => {
      if (optlen < size) fail('EINVAL');
      return this.user(opt, size);
    };
    switch (cmd) {
      case BLKFILTER_CTL_BLKSNAP.cbtinfo:
        sized(LAYOUT.blksnap_cbtinfo.size).set(
          encodeCbtInfo({
            deviceCapacity: tracker.capacitySectors * SECTOR_SIZE,
            blockSize: 2 ** tracker.blkSizeShift,
            blockCount: tracker.blkCount,
            generationId: tracker.generationId,
            changesNumber: tracker.snapNumberPrevious,
          }),
        );
        return 0;
      case BLKFILTER_CTL_BLKSNAP.cbtmap: {
        const req = decodeCbtMap(sized(LAYOUT.blksnap_cbtmap.size));
        if (req.offset > tracker.blkCount || req.length > tracker.blkCount - req.offset) fail('ENODATA');
        // v6 header: "Return a count of bytes read if succeeded".
        const length = Math.min(req.length, this.maxCbtMapRead);
        this.user(req.buffer, length).set(tracker.readMap.subarray(req.offset, req.offset + length));
        return length;
      }
      case BLKFILTER_CTL_BLKSNAP.cbtdirty: {
        const req = decodeCbtDirty(sized(LAYOUT.blksnap_cbtdirty.size));
        const size = LAYOUT.blksnap_sectors.size;
        for (let i = 0; i < req.count; i++) {
          const range = decodeSectors(this.user(req.dirtySectors + BigInt(i * size), size));
          if (!setMap(tracker, range.offset, range.count, tracker.snapNumberActive, tracker.writeMap)) fail('EINVAL');
          setMap(tracker, range.offset, range.count, tracker.snapNumberPrevious, tracker.readMap);
        }
        return 0;
      }
      case BLKFILTER_CTL_BLKSNAP.snapshotadd: {
        const snapshot = this.snapshotById(decodeSnapshotAdd(sized(LAYOUT.blksnap_snapshotadd.size)));
        if (!snapshot) fail('ESRCH');
        if (snapshot.devices.includes(device)) fail('EALREADY');
        if (tracker.snapshotId) fail('EBUSY');
        tracker.snapshotId = snapshot.id;
        snapshot.devices.push(device);
        return 0;
      }
      case BLKFILTER_CTL_BLKSNAP.snapshotinfo:
        sized(LAYOUT.blksnap_snapshotinfo.size).set(
          encodeSnapshotInfo({ errorCode: tracker.errorCode, image: tracker.imageName }),
        );
        return 0;
      default:
        fail('ENOTTY');
    }
  }
}

function cString(buf: Buffer, offset: number, length: number): string {
  const bytes = buf.subarray(offset, offset + length);
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? length : end).toString('latin1');
}

function newTracker(capacitySectors: number, previous?: FakeTracker): FakeTracker {
  let shift = TRACKING_BLOCK_MINIMUM_SHIFT;
  const countFor = (s: number): number => Math.ceil(capacitySectors / 2 ** (s - SECTOR_SHIFT));
  while (countFor(shift) > TRACKING_BLOCK_MAXIMUM_COUNT && shift < TRACKING_BLOCK_MAXIMUM_SHIFT) shift++;
  const blkCount = countFor(shift);
  return {
    capacitySectors,
    blkSizeShift: shift,
    blkCount,
    readMap: new Uint8Array(blkCount),
    writeMap: new Uint8Array(blkCount),
    snapNumberActive: 1,
    snapNumberPrevious: 0,
    generationId: randomUUID(),
    snapshotId: previous?.snapshotId ?? null,
    imageName: '',
    errorCode: 0,
  };
}

/** cbt_map_switch */
function switchMap(t: FakeTracker): void {
  t.snapNumberPrevious = t.snapNumberActive;
  t.snapNumberActive++;
  if (t.snapNumberActive === 256) {
    t.snapNumberActive = 1;
    t.writeMap.fill(0);
    t.generationId = randomUUID();
  } else {
    t.readMap.set(t.writeMap);
  }
}

/** _cbt_map_set: false when the range leaves the map. */
function setMap(t: FakeTracker, sector: number, count: number, number: number, map: Uint8Array): boolean {
  const shift = t.blkSizeShift - SECTOR_SHIFT;
  const first = Math.floor(sector / 2 ** shift);
  const last = Math.floor((sector + count - 1) / 2 ** shift);
  for (let i = first; i <= last; i++) {
    if (i >= t.blkCount) return false;
    if ((map[i] ?? 0) < number) map[i] = number;
  }
  return true;
}

function waitForEvent(snapshot: FakeSnapshot, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      snapshot.waiters.delete(done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    snapshot.waiters.add(done);
  });
}
