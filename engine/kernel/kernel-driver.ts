/**
 * BlksnapDriver over the blksnap kernel module: IOCTL_BLKSNAP_* on
 * /dev/blksnap-control and BLKFILTER_* on the block devices, with the v6 struct
 * layouts of abi-structs.ts, through an IoctlLayer (koffi in production, a
 * simulation of the module in tests).
 */
import { readlinkSync } from 'node:fs';
import { stat, unlink } from 'node:fs/promises';
import { basename } from 'node:path';
import type { BlksnapDriver } from '../abi/driver.js';
import { BlksnapError, isBlksnapError } from '../abi/errno.js';
import type {
  BlksnapVersion,
  CbtInfo,
  DeviceRef,
  SectorRange,
  SnapshotCreateParams,
  SnapshotEvent,
  SnapshotId,
  SnapshotInfo,
  StorageInfo,
} from '../abi/types.js';
import { SECTOR_SIZE } from '../abi/types.js';
import {
  BLKFILTER_CTL_BLKSNAP,
  BLKSNAP_CTL,
  BLKSNAP_EVENT_CODE,
  BLKSNAP_FILTER_NAME,
  LAYOUT,
  NIL_UUID,
  decodeCbtInfo,
  decodeEventCorrupted,
  decodeEventNoSpace,
  decodeSnapshotCollect,
  decodeSnapshotCreate,
  decodeSnapshotEvent,
  decodeSnapshotInfo,
  decodeUuid,
  decodeVersion,
  encodeBlkfilterCtl,
  encodeBlkfilterName,
  encodeCbtMap,
  encodeCbtDirty,
  encodeSectors,
  encodeSnapshotAdd,
  encodeSnapshotCollect,
  encodeSnapshotCreate,
  encodeSnapshotEvent,
  encodeUuid,
} from './abi-structs.js';
import type { IoctlLayer, NativeMemory } from './ioctl-layer.js';
import { O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_RDWR, fsError, withMemory } from './ioctl-layer.js';
import {
  BLKFILTER_ATTACH,
  BLKFILTER_CTL,
  BLKFILTER_DETACH,
  IOCTL_BLKSNAP_SNAPSHOT_COLLECT,
  IOCTL_BLKSNAP_SNAPSHOT_CREATE,
  IOCTL_BLKSNAP_SNAPSHOT_DESTROY,
  IOCTL_BLKSNAP_SNAPSHOT_TAKE,
  IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT,
  IOCTL_BLKSNAP_VERSION,
} from './ioctl-numbers.js';

export const DEFAULT_CONTROL_PATH = `/dev/${BLKSNAP_CTL}`;
/** IOCTL_BLKSNAP_SNAPSHOT_COLLECT retries when snapshots appear between its two calls. */
const COLLECT_ATTEMPTS = 5;
const MAX_TIMEOUT_MS = 0xffff_ffff;

export interface KernelDriverOptions {
  /** The system-call layer; production passes a KoffiIoctlLayer. */
  layer: IoctlLayer;
  /** Default /dev/blksnap-control. */
  controlPath?: string;
  /** Directory of device nodes, for relative device names and image names. Default /dev. */
  devDir?: string;
  /** Device path for a major:minor (corrupted events). Default: /sys/dev/block lookup. */
  resolveDevice?: (major: number, minor: number) => string;
  /** CLOCK_MONOTONIC now in ns (the clock of event time labels). */
  monotonicNowNs?: () => bigint;
  /** Wall clock now in ms. */
  nowMs?: () => number;
}

/** /dev/<name> of a device number, from the /sys/dev/block symlink; "major:minor" when unknown. */
export function sysfsDevicePath(major: number, minor: number, devDir = '/dev'): string {
  try {
    return `${devDir}/${basename(readlinkSync(`/sys/dev/block/${major}:${minor}`))}`;
  } catch {
    return `${major}:${minor}`;
  }
}

/** A BlksnapError's message without its "ERRNO: " prefix. */
function plainMessage(err: BlksnapError): string {
  const prefix = `${err.errno}: `;
  return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
}

interface StorageRecord {
  path: string;
  limitSectors: number;
  /** False for a file its caller created (diffStorageFd): the caller removes it. */
  removable: boolean;
}

export class KernelDriver implements BlksnapDriver {
  readonly kind = 'kernel' as const;
  private readonly layer: IoctlLayer;
  private readonly controlPath: string;
  private readonly devDir: string;
  private readonly resolveDevice: (major: number, minor: number) => string;
  private readonly monotonicNowNs: () => bigint;
  private readonly nowMs: () => number;
  private controlFd: Promise<number> | undefined;
  /** Storage files this driver created, by snapshot id (removed on destroy). */
  private readonly storage = new Map<SnapshotId, StorageRecord>();
  /** Device paths added to each snapshot through this driver (detach refuses them until destroy). */
  private readonly members = new Map<SnapshotId, Set<string>>();

  constructor(options: KernelDriverOptions) {
    this.layer = options.layer;
    this.controlPath = options.controlPath ?? DEFAULT_CONTROL_PATH;
    this.devDir = options.devDir ?? '/dev';
    this.resolveDevice = options.resolveDevice ?? ((mj, mn) => sysfsDevicePath(mj, mn, this.devDir));
    this.monotonicNowNs = options.monotonicNowNs ?? (() => process.hrtime.bigint());
    this.nowMs = options.nowMs ?? (() => Date.now());
  }

  /** The image's block device path from snapshotinfo, or null before take. */
  imageDevicePath(info: SnapshotInfo): string | null {
    return info.image ? `${this.devDir}/${info.image}` : null;
  }

  // ---- /dev/blksnap-control ------------------------------------------------

  private control(): Promise<number> {
    if (!this.controlFd) {
      const opening = this.layer.open(this.controlPath, O_RDWR).catch((err: unknown) => {
        this.controlFd = undefined;
        if (isBlksnapError(err) && err.errno === 'ENOENT') {
          throw new BlksnapError('ENOENT', `${this.controlPath} does not exist: the blksnap kernel module is not loaded`);
        }
        throw err;
      });
      this.controlFd = opening;
    }
    return this.controlFd;
  }

  /** One ioctl on the control device with `struct` bytes in layer memory; returns the bytes after the call. */
  private async controlIoctl(request: number, struct: Buffer): Promise<Buffer> {
    const fd = await this.control();
    return withMemory(this.layer, struct.length, async (mem) => {
      mem.buffer.set(struct);
      await this.layer.ioctl(fd, request, mem.buffer);
      return Buffer.from(mem.buffer);
    });
  }

  async version(): Promise<BlksnapVersion> {
    return decodeVersion(await this.controlIoctl(IOCTL_BLKSNAP_VERSION, Buffer.alloc(LAYOUT.blksnap_version.size)));
  }

  async snapshotCreate(params: SnapshotCreateParams): Promise<SnapshotId> {
    const { diffStoragePath, limitSectors, diffStorageFd } = params;
    const given = diffStorageFd !== undefined;
    try {
      if (!diffStoragePath) throw new BlksnapError('EINVAL', 'no difference-storage path given');
      if (!Number.isSafeInteger(limitSectors) || limitSectors <= 0) {
        throw new BlksnapError('EINVAL', `difference-storage limit must be a positive number of sectors, got ${limitSectors}`);
      }
    } catch (err) {
      if (given) await this.layer.close(diffStorageFd).catch(() => undefined);
      throw err;
    }
    // A file the caller created and checked, or a new one here: never reuse or
    // overwrite a file, never follow a symlink.
    const fd = given ? diffStorageFd : await this.layer.open(diffStoragePath, O_CREAT | O_EXCL | O_NOFOLLOW | O_RDWR, 0o600);
    let id: SnapshotId;
    try {
      const out = await this.controlIoctl(
        IOCTL_BLKSNAP_SNAPSHOT_CREATE,
        encodeSnapshotCreate({ diffStorageLimitSect: limitSectors, diffStorageFd: fd, id: NIL_UUID }),
      );
      id = decodeSnapshotCreate(out).id;
    } catch (err) {
      await this.layer.close(fd).catch(() => undefined);
      if (!given) await unlink(diffStoragePath).catch(() => undefined);
      throw err;
    }
    // The module holds its own reference to the file; our descriptor is not needed.
    await this.layer.close(fd).catch(() => undefined);
    this.storage.set(id, { path: diffStoragePath, limitSectors, removable: !given });
    return id;
  }

  async snapshotDestroy(id: SnapshotId): Promise<void> {
    await this.controlIoctl(IOCTL_BLKSNAP_SNAPSHOT_DESTROY, encodeUuid(id));
    this.members.delete(id);
    const record = this.storage.get(id);
    this.storage.delete(id);
    if (record?.removable) {
      await unlink(record.path).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(err, `cannot remove ${record.path}`);
      });
    }
  }

  async snapshotTake(id: SnapshotId): Promise<void> {
    await this.controlIoctl(IOCTL_BLKSNAP_SNAPSHOT_TAKE, encodeUuid(id));
  }

  async snapshotCollect(): Promise<SnapshotId[]> {
    for (let attempt = 0; attempt < COLLECT_ATTEMPTS; attempt++) {
      // First call: null array, zero count -> the module sets the count needed.
      const sized = decodeSnapshotCollect(
        await this.controlIoctl(IOCTL_BLKSNAP_SNAPSHOT_COLLECT, encodeSnapshotCollect({ count: 0, ids: 0n })),
      );
      if (sized.count === 0) return [];
      const uuidSize = LAYOUT.blksnap_uuid.size;
      try {
        return await withMemory(this.layer, sized.count * uuidSize, async (ids) => {
          const out = decodeSnapshotCollect(
            await this.controlIoctl(
              IOCTL_BLKSNAP_SNAPSHOT_COLLECT,
              encodeSnapshotCollect({ count: sized.count, ids: ids.address }),
            ),
          );
          const result: SnapshotId[] = [];
          for (let i = 0; i < Math.min(out.count, sized.count); i++) result.push(decodeUuid(ids.buffer, i * uuidSize));
          return result;
        });
      } catch (err) {
        // -ENODATA: more snapshots than the array holds (created in between); size again.
        if (isBlksnapError(err) && err.errno === 'ENODATA') continue;
        throw err;
      }
    }
    throw new BlksnapError('EAGAIN', 'the set of snapshots kept changing while it was collected');
  }

  async snapshotWaitEvent(id: SnapshotId, timeoutMs: number): Promise<SnapshotEvent | null> {
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new BlksnapError('EINVAL', `invalid timeout ${timeoutMs}`);
    const request = encodeSnapshotEvent({
      id,
      timeoutMs: Math.min(Math.floor(timeoutMs), MAX_TIMEOUT_MS),
      code: 0,
      timeLabel: 0n,
      data: new Uint8Array(0),
    });
    let out: Buffer;
    try {
      out = await this.controlIoctl(IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, request);
    } catch (err) {
      if (isBlksnapError(err) && err.errno === 'ENOENT') return null; // timeout, queue empty
      throw err;
    }
    const event = decodeSnapshotEvent(out);
    const ageMs = Number((this.monotonicNowNs() - event.timeLabel) / 1_000_000n);
    const base = { snapshotId: id, timeMs: this.nowMs() - Math.max(0, ageMs) };
    switch (event.code) {
      case BLKSNAP_EVENT_CODE.corrupted: {
        const body = decodeEventCorrupted(event.data);
        return {
          ...base,
          code: 'corrupted',
          device: this.resolveDevice(body.devIdMj, body.devIdMn),
          devMajor: body.devIdMj,
          devMinor: body.devIdMn,
          errCode: body.errCode,
        };
      }
      case BLKSNAP_EVENT_CODE.no_space:
        return { ...base, code: 'no_space', requestedSectors: decodeEventNoSpace(event.data) };
      default:
        throw new BlksnapError('EOPNOTSUPP', `snapshot ${id}: unknown event code ${event.code} from the module`);
    }
  }

  // ---- BLKFILTER_* on the block devices ------------------------------------

  private devicePath(device: DeviceRef): string {
    if (!device) throw new BlksnapError('EINVAL', 'no device given');
    return device.startsWith('/') ? device : `${this.devDir}/${device}`;
  }

  /** Opens the device for the duration of `fn`; errors name the device path. */
  private async withDevice<T>(device: DeviceRef, fn: (fd: number, path: string) => Promise<T>): Promise<T> {
    const path = this.devicePath(device);
    const fd = await this.layer.open(path, O_RDONLY);
    try {
      return await fn(fd, path);
    } catch (err) {
      if (isBlksnapError(err)) throw new BlksnapError(err.errno, `${path}: ${plainMessage(err)}`);
      throw err;
    } finally {
      await this.layer.close(fd).catch(() => undefined);
    }
  }

  private async filterIoctl(fd: number, request: number): Promise<void> {
    await withMemory(this.layer, LAYOUT.blkfilter_name.size, async (mem) => {
      mem.buffer.set(encodeBlkfilterName(BLKSNAP_FILTER_NAME));
      try {
        await this.layer.ioctl(fd, request, mem.buffer);
      } catch (err) {
        // blkfilter_ioctl_attach never returns these: the kernel does not know the request.
        if (request === BLKFILTER_ATTACH && isBlksnapError(err) && (err.errno === 'ENOTTY' || err.errno === 'EINVAL')) {
          throw new BlksnapError(err.errno, `${plainMessage(err)} (this kernel has no block-device filter support)`);
        }
        throw err;
      }
    });
  }

  /**
   * BLKFILTER_CTL with a blksnap command: `opt` is copied into layer memory (its
   * address goes into blkfilter_ctl.opt); the option bytes after the call are returned.
   */
  private async ctl(fd: number, cmd: number, opt: Buffer): Promise<Buffer> {
    return (await this.ctlWithResult(fd, cmd, opt)).out;
  }

  /** ctl() that also gives the ioctl's non-negative return value (cbtmap: bytes read). */
  private async ctlWithResult(fd: number, cmd: number, opt: Buffer): Promise<{ out: Buffer; ret: number }> {
    return withMemory(this.layer, opt.length, (optMem) =>
      withMemory(this.layer, LAYOUT.blkfilter_ctl.size, async (ctlMem) => {
        optMem.buffer.set(opt);
        ctlMem.buffer.set(
          encodeBlkfilterCtl({ name: BLKSNAP_FILTER_NAME, cmd, optlen: opt.length, opt: optMem.address }),
        );
        const ret = await this.layer.ioctl(fd, BLKFILTER_CTL, ctlMem.buffer);
        return { out: Buffer.from(optMem.buffer), ret };
      }),
    );
  }

  async attach(device: DeviceRef): Promise<void> {
    await this.withDevice(device, (fd) => this.filterIoctl(fd, BLKFILTER_ATTACH));
  }

  /**
   * BLKFILTER_DETACH, refused with EBUSY while the device is in a snapshot: the
   * module would detach it anyway (blkfilter_ioctl_detach checks only the filter
   * name), and the snapshot's copy-on-write would stop with it.
   */
  async detach(device: DeviceRef): Promise<void> {
    await this.withDevice(device, async (fd, path) => {
      const holders = [...this.members].filter(([, paths]) => paths.has(path)).map(([id]) => id);
      if (holders.length > 0) {
        // Destroyed elsewhere (another process) no longer counts.
        const live = new Set(await this.snapshotCollect());
        for (const id of holders) {
          if (live.has(id)) throw new BlksnapError('EBUSY', `it is in snapshot ${id}: destroy the snapshot first`);
          this.members.delete(id);
        }
      }
      // A snapshot of another process: visible once taken, by its image name.
      let image = '';
      try {
        image = decodeSnapshotInfo(
          await this.ctl(fd, BLKFILTER_CTL_BLKSNAP.snapshotinfo, Buffer.alloc(LAYOUT.blksnap_snapshotinfo.size)),
        ).image;
      } catch (err) {
        // No blksnap filter: BLKFILTER_DETACH below reports it (ENOENT).
        if (!(isBlksnapError(err) && err.errno === 'ENOENT')) throw err;
      }
      if (image) throw new BlksnapError('EBUSY', `it is in a snapshot (image ${image}): destroy the snapshot first`);
      await this.filterIoctl(fd, BLKFILTER_DETACH);
    });
  }

  async cbtInfo(device: DeviceRef): Promise<CbtInfo> {
    return this.withDevice(device, (fd) => this.cbtInfoFd(fd));
  }

  private async cbtInfoFd(fd: number): Promise<CbtInfo> {
    const out = await this.ctl(fd, BLKFILTER_CTL_BLKSNAP.cbtinfo, Buffer.alloc(LAYOUT.blksnap_cbtinfo.size));
    return decodeCbtInfo(out);
  }

  async cbtMap(device: DeviceRef, offset: number, length: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new BlksnapError('EINVAL', `invalid CBT map range offset=${offset} length=${length}`);
    }
    return this.withDevice(device, async (fd) => {
      const info = await this.cbtInfoFd(fd);
      if (offset > info.blockCount) {
        throw new BlksnapError('EINVAL', `CBT map offset ${offset} beyond its ${info.blockCount} blocks`);
      }
      // The module answers -ENODATA for a range past the end: ask only for what exists.
      const count = Math.min(length, info.blockCount - offset);
      if (count === 0) return new Uint8Array(0);
      return withMemory(this.layer, count, async (mem: NativeMemory) => {
        // v6: cbtmap returns the count of bytes read and the caller goes on from
        // there; seed 001's tracker.c returns 0 after copying all of them.
        let done = 0;
        while (done < count) {
          const rest = count - done;
          const { ret } = await this.ctlWithResult(
            fd,
            BLKFILTER_CTL_BLKSNAP.cbtmap,
            encodeCbtMap({ offset: offset + done, length: rest, buffer: mem.address + BigInt(done) }),
          );
          const read = ret === 0 ? rest : ret;
          if (read > rest) throw new BlksnapError('EIO', `cbtmap reported ${ret} bytes read of ${rest} asked for`);
          done += read;
        }
        return new Uint8Array(mem.buffer);
      });
    });
  }

  async cbtDirty(device: DeviceRef, ranges: SectorRange[]): Promise<void> {
    for (const r of ranges) {
      if (!Number.isSafeInteger(r.offset) || r.offset < 0 || !Number.isSafeInteger(r.count) || r.count <= 0) {
        throw new BlksnapError('EINVAL', `invalid sector range offset=${r.offset} count=${r.count}`);
      }
    }
    await this.withDevice(device, async (fd) => {
      // One range per command: the module's loop (seed 001 tracker.c ctl_cbtdirty)
      // re-reads the first array element on every iteration, so count=1 is the form
      // that marks every range on each module version.
      for (const range of ranges) {
        await withMemory(this.layer, LAYOUT.blksnap_sectors.size, async (mem) => {
          mem.buffer.set(encodeSectors(range));
          await this.ctl(fd, BLKFILTER_CTL_BLKSNAP.cbtdirty, encodeCbtDirty({ count: 1, dirtySectors: mem.address }));
        });
      }
    });
  }

  async snapshotAdd(id: SnapshotId, device: DeviceRef): Promise<void> {
    const opt = encodeSnapshotAdd(id);
    await this.withDevice(device, async (fd, path) => {
      try {
        await this.filterIoctl(fd, BLKFILTER_ATTACH);
      } catch (err) {
        if (!(isBlksnapError(err) && err.errno === 'EALREADY')) throw err;
      }
      await this.ctl(fd, BLKFILTER_CTL_BLKSNAP.snapshotadd, opt);
      const paths = this.members.get(id) ?? new Set<string>();
      paths.add(path);
      this.members.set(id, paths);
    });
  }

  async snapshotInfo(device: DeviceRef): Promise<SnapshotInfo> {
    return this.withDevice(device, async (fd) =>
      decodeSnapshotInfo(
        await this.ctl(fd, BLKFILTER_CTL_BLKSNAP.snapshotinfo, Buffer.alloc(LAYOUT.blksnap_snapshotinfo.size)),
      ),
    );
  }

  async storageInfo(id: SnapshotId): Promise<StorageInfo> {
    const record = this.storage.get(id);
    if (!record) throw new BlksnapError('ESRCH', `snapshot ${id} was not created by this driver`);
    let sectors: number;
    try {
      // the space the file really holds: its blocks (512 bytes each), at most its size
      const st = await stat(record.path);
      sectors = Math.min(Math.ceil(st.size / SECTOR_SIZE), st.blocks);
    } catch (err) {
      throw fsError(err, `cannot stat ${record.path}`);
    }
    return {
      snapshotId: id,
      path: record.path,
      limitSectors: record.limitSectors,
      allocatedSectors: sectors,
      usedSectors: null,
    };
  }

  async close(): Promise<void> {
    const pending = this.controlFd;
    this.controlFd = undefined;
    if (!pending) return;
    const fd = await pending.catch(() => undefined);
    if (fd !== undefined) await this.layer.close(fd).catch(() => undefined);
  }
}
