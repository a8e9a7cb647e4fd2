/**
 * BlksnapDriver over the blksnap kernel module: IOCTL_BLKSNAP_* on the module's
 * control device and the block-device filter commands, in one of three dialects
 * (dialects.ts: v6, VAL-7.0, lk6.15), through an IoctlLayer (koffi in production, a
 * simulation of the module in tests).
 */
import { fstatSync, fsync as fsFsync, readlinkSync } from 'node:fs';
import { stat, unlink } from 'node:fs/promises';
import { basename } from 'node:path';
import { splitDevT } from '../abi/dev-t.js';
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
  decodeSnapshotEvent,
  decodeSnapshotInfo,
  decodeUuid,
  decodeVersion,
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
import type { KernelDialect } from './dialects.js';
import { DIALECTS } from './dialects.js';
import { encodeAppendStorage, encodeSnapshotCreatePath } from './dialect-structs.js';
import type { MapDeps, MappedFile, ReserveSpace } from './mapped-storage.js';
import { isImmutable, mapNewFile, setImmutable, sharesDisk } from './mapped-storage.js';
import {
  IOCTL_BLKSNAP_SNAPSHOT_COLLECT,
  IOCTL_BLKSNAP_SNAPSHOT_DESTROY,
  IOCTL_BLKSNAP_SNAPSHOT_TAKE,
  IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT,
  IOCTL_BLKSNAP_VERSION,
} from './ioctl-numbers.js';

export const DEFAULT_CONTROL_PATH = `/dev/${BLKSNAP_CTL}`;
/** Most ranges one append_storage call carries. */
const MAX_APPEND_RANGES = 4096;
/** IOCTL_BLKSNAP_SNAPSHOT_COLLECT retries when snapshots appear between its two calls. */
const COLLECT_ATTEMPTS = 5;
const MAX_TIMEOUT_MS = 0xffff_ffff;
/**
 * The module's limit for a snapshot whose storage the driver maps (VAL-7.0 append
 * mode): only a ceiling for its requests; the storage is what was appended.
 */
export const APPEND_MODE_LIMIT_SECTORS = 2 ** 50;

export interface KernelDriverOptions {
  /** The system-call layer; production passes a KoffiIoctlLayer. */
  layer: IoctlLayer;
  /** The module's ABI dialect (detect.ts finds it). Default v6. */
  dialect?: KernelDialect;
  /** Default: the dialect's control device. */
  controlPath?: string;
  /** Directory of device nodes, for relative device names and image names. Default /dev. */
  devDir?: string;
  /** Device path for a major:minor (corrupted events). Default: /sys/dev/block lookup. */
  resolveDevice?: (major: number, minor: number) => string;
  /** CLOCK_MONOTONIC now in ns (the clock of event time labels). */
  monotonicNowNs?: () => bigint;
  /** Wall clock now in ms. */
  nowMs?: () => number;
  /**
   * fallocate for storage the driver maps (SnapshotCreateParams.growable, VAL-7.0);
   * without it every storage is the module's own file and cannot grow.
   */
  reserveSpace?: ReserveSpace;
}

function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsFsync(fd, (err) => (err ? reject(fsError(err, `cannot fsync fd ${fd}`)) : resolve())));
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

/** Where one device's filter commands go (see KernelDriver.withDevice). */
interface FilterTarget {
  fd: number;
  /** The device path. */
  path: string;
  /** Address of the device path string (bdevfilter), else 0. */
  devpath: bigint;
}

function checkRanges(ranges: SectorRange[]): void {
  for (const r of ranges) {
    if (!Number.isSafeInteger(r.offset) || r.offset < 0 || !Number.isSafeInteger(r.count) || r.count <= 0) {
      throw new BlksnapError('EINVAL', `invalid sector range offset=${r.offset} count=${r.count}`);
    }
  }
}

interface StorageRecord {
  path: string;
  limitSectors: number;
  /** False for a file its caller created (diffStorageFd): the caller removes it. */
  removable: boolean;
  /** Files the module writes by sector ranges (append mode), held open until destroy; empty in the module's file mode. */
  mapped: MappedFile[];
  /** Why this snapshot's storage cannot grow (null when it can). */
  growRefusal: string | null;
}

export class KernelDriver implements BlksnapDriver {
  readonly kind = 'kernel' as const;
  readonly dialect: KernelDialect;
  private readonly layer: IoctlLayer;
  private readonly controlPath: string;
  private readonly devDir: string;
  private readonly resolveDevice: (major: number, minor: number) => string;
  private readonly monotonicNowNs: () => bigint;
  private readonly nowMs: () => number;
  private readonly reserveSpace: ReserveSpace | null;
  private controlFd: Promise<number> | undefined;
  /** Storage files this driver created, by snapshot id (removed on destroy). */
  private readonly storage = new Map<SnapshotId, StorageRecord>();
  /** Device paths added to each snapshot through this driver (detach refuses them until destroy). */
  private readonly members = new Map<SnapshotId, Set<string>>();

  constructor(options: KernelDriverOptions) {
    this.layer = options.layer;
    this.dialect = options.dialect ?? DIALECTS.v6;
    this.controlPath = options.controlPath ?? this.dialect.controlPath;
    this.devDir = options.devDir ?? '/dev';
    this.resolveDevice = options.resolveDevice ?? ((mj, mn) => sysfsDevicePath(mj, mn, this.devDir));
    this.monotonicNowNs = options.monotonicNowNs ?? (() => process.hrtime.bigint());
    this.nowMs = options.nowMs ?? (() => Date.now());
    this.reserveSpace = options.reserveSpace ?? null;
  }

  /** True when held snapshots can be given more storage (storageGrowFile): VAL-7.0 with space reservation. */
  get canGrowStorage(): boolean {
    return this.dialect.appendStorageRequest !== null && this.dialect.storage === 'path' && this.reserveSpace !== null;
  }

  /** The module opens the storage by path (/proc/self/fd/N), claiming a block device itself. */
  get storageByPath(): boolean {
    return this.dialect.storage !== 'fd';
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
          throw new BlksnapError('ENOENT', `${this.controlPath} does not exist: the ${this.dialect.moduleName} kernel module is not loaded`);
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
    let growRefusal: string | null = params.growable ? this.cannotGrowWhy() : 'it was not created growable (only a new file the helper creates can grow)';
    let mapped: MappedFile | null = null;
    let id: SnapshotId;
    let asked = false;
    try {
      if (growRefusal === null) {
        try {
          mapped = await mapNewFile(this.mapDeps(), fd, diffStoragePath, limitSectors);
        } catch (err) {
          // a full file system is refused as the module would; anything else (tmpfs, btrfs,
          // no FIEMAP, no immutable flag...) leaves the module's own file mode, without grow
          if (isBlksnapError(err) && err.errno === 'ENOSPC') throw err;
          growRefusal = isBlksnapError(err) ? plainMessage(err) : String(err);
        }
      }
      asked = true;
      id = mapped ? await this.createMapped(mapped) : await this.createIoctl(limitSectors, fd);
    } catch (err) {
      if (mapped) await setImmutable(this.layer, fd, false, diffStoragePath).catch(() => undefined);
      await this.layer.close(fd).catch(() => undefined);
      if (!given) await unlink(diffStoragePath).catch(() => undefined);
      // the module's answer explained; the mapping's own refusals are in words already
      throw asked ? this.explainCreateError(err, params) : err;
    }
    // The module holds its own reference to a file it opened; a mapped file stays open here until destroy.
    if (!mapped) await this.layer.close(fd).catch(() => undefined);
    this.storage.set(id, { path: diffStoragePath, limitSectors, removable: !given, mapped: mapped ? [mapped] : [], growRefusal });
    return id;
  }

  /** Why no storage of this driver can grow, or null. */
  private cannotGrowWhy(): string | null {
    if (this.dialect.appendStorageRequest === null || this.dialect.storage !== 'path') {
      return `the ${this.dialect.title} module cannot add difference storage to a held snapshot (it has no append_storage)`;
    }
    if (!this.reserveSpace) return 'this driver cannot reserve file space (no fallocate)';
    return null;
  }

  private mapDeps(): MapDeps {
    return { layer: this.layer, reserveSpace: this.reserveSpace ?? (() => Promise.reject(new Error('no fallocate'))), resolveDevice: this.resolveDevice, fsync: fsyncFd };
  }

  /** Append mode with a ceiling for a limit, then the mapped file's ranges; destroyed again if they are refused. */
  private async createMapped(file: MappedFile): Promise<SnapshotId> {
    const id = await this.snapshotCreateAppendable(APPEND_MODE_LIMIT_SECTORS);
    try {
      await this.appendMapped(id, file);
    } catch (err) {
      await this.controlIoctl(IOCTL_BLKSNAP_SNAPSHOT_DESTROY, encodeUuid(id)).catch(() => undefined);
      throw err;
    }
    return id;
  }

  private async appendMapped(id: SnapshotId, file: MappedFile): Promise<void> {
    for (let i = 0; i < file.ranges.length; i += MAX_APPEND_RANGES) {
      await this.appendStorage(id, file.device, file.ranges.slice(i, i + MAX_APPEND_RANGES));
    }
  }

  /**
   * Grows held snapshot `id` by `sectors`: a new empty file the caller created next to
   * its storage (`fd`, taken over: closed on failure, held open until destroy) is
   * reserved, mapped, made immutable and appended (VAL-7.0 only; docs/kernel-driver.md
   * "Grow on VAL-7"). The caller removes the file after destroy, or when this fails.
   */
  async storageGrowFile(id: SnapshotId, fd: number, path: string, sectors: number): Promise<void> {
    let file: MappedFile | null = null;
    try {
      if (!Number.isSafeInteger(sectors) || sectors <= 0) throw new BlksnapError('EINVAL', `grow by a positive number of sectors, got ${sectors}`);
      const record = this.storage.get(id);
      if (!record) throw new BlksnapError('ESRCH', `snapshot ${id} was not created by this driver (or this helper was restarted since)`);
      if (record.mapped.length === 0) throw new BlksnapError('EOPNOTSUPP', `the difference storage of snapshot ${id} cannot grow: ${record.growRefusal ?? "it is the module's own file"}`);
      file = await mapNewFile(this.mapDeps(), fd, path, sectors);
      const mapped = file;
      const member = [...(this.members.get(id) ?? [])].find((device) => sharesDisk(mapped, device));
      if (member) throw new BlksnapError('EINVAL', `${path} is on ${mapped.device}, the disk of ${member}, which is in the snapshot: put the storage on another disk`);
      await this.appendMapped(id, mapped);
      record.mapped.push(mapped);
      record.limitSectors += sectors;
    } catch (err) {
      if (file) await setImmutable(this.layer, fd, false, path).catch(() => undefined);
      await this.layer.close(fd).catch(() => undefined);
      throw err;
    }
  }

  /**
   * A path-taking module (diff_storage_set) refuses with ENOSPC an existing file or
   * block device larger than the limit (when it is at most half its
   * diff_storage_minimum, 512 MiB by default): it would use all of it. Said in words.
   */
  private explainCreateError(err: unknown, params: SnapshotCreateParams): unknown {
    if (this.dialect.storage === 'fd' || !(err instanceof BlksnapError) || err.errno !== 'ENOSPC') return err;
    const limitMiB = Math.round((params.limitSectors * 512) / (1024 * 1024));
    return new BlksnapError(
      'ENOSPC',
      `the difference storage ${params.diffStoragePath} is larger than the limit of ${limitMiB} MiB: the module uses all of an existing file or block device, so give a limit of at least its size (or choose a directory)`,
    );
  }

  /**
   * snapshot_create naming the storage by our open fd: the fd itself (v6), or the
   * path /proc/self/fd/N, which the module opens and so reaches this very file, never
   * a file swapped in under the caller's path after it was checked.
   */
  private async createIoctl(limitSectors: number, fd: number): Promise<SnapshotId> {
    const d = this.dialect;
    if (d.storage === 'fd') {
      const out = await this.controlIoctl(
        d.createRequest,
        encodeSnapshotCreate({ diffStorageLimitSect: limitSectors, diffStorageFd: fd, id: NIL_UUID }),
      );
      return decodeUuid(out, d.createIdOffset);
    }
    return this.withCString(`/proc/self/fd/${fd}`, async (filename) => {
      const out = await this.controlIoctl(d.createRequest, encodeSnapshotCreatePath(limitSectors, filename));
      return decodeUuid(out, d.createIdOffset);
    });
  }

  /** A NUL-terminated string in layer memory, for a path pointer field. */
  private withCString<T>(value: string, fn: (address: bigint) => Promise<T>): Promise<T> {
    const bytes = Buffer.from(value, 'utf8');
    if (bytes.includes(0)) throw new BlksnapError('EINVAL', `path ${JSON.stringify(value)} holds a NUL byte`);
    return withMemory(this.layer, bytes.length + 1, async (mem) => {
      mem.buffer.set(bytes);
      mem.buffer[bytes.length] = 0;
      return fn(mem.address);
    });
  }

  /**
   * snapshot_create in VAL-7.0's append mode: a NULL storage path, so the snapshot has
   * no storage of its own. The module asks for space with a low_free_space event
   * (requested sectors, at most the limit) and the caller answers each with
   * appendStorage(), giving it ranges of a block device. EOPNOTSUPP in the other
   * dialects (lk6.15 and v6 require a storage).
   */
  async snapshotCreateAppendable(limitSectors: number): Promise<SnapshotId> {
    const d = this.dialect;
    if (d.appendStorageRequest === null || d.storage !== 'path') {
      throw new BlksnapError('EOPNOTSUPP', `the ${d.title} module needs a difference storage at create`);
    }
    if (!Number.isSafeInteger(limitSectors) || limitSectors <= 0) {
      throw new BlksnapError('EINVAL', `difference-storage limit must be a positive number of sectors, got ${limitSectors}`);
    }
    const out = await this.controlIoctl(d.createRequest, encodeSnapshotCreatePath(limitSectors, 0n));
    return decodeUuid(out, d.createIdOffset);
  }

  /**
   * IOCTL_BLKSNAP_SNAPSHOT_APPEND_STORAGE (VAL-7.0 only): adds the sector ranges of
   * a block device to a snapshot's difference storage. The module answers the
   * low_free_space event of a snapshot created in its stretch mode with it. No
   * ranges: the module only compares what was appended with what it requested and,
   * when that covers it, clears its low-space flag so that it asks again.
   */
  async appendStorage(id: SnapshotId, device: DeviceRef, ranges: SectorRange[]): Promise<void> {
    const request = this.dialect.appendStorageRequest;
    if (request === null) {
      throw new BlksnapError('EOPNOTSUPP', `the ${this.dialect.title} module cannot append difference storage`);
    }
    if (ranges.length > MAX_APPEND_RANGES) {
      throw new BlksnapError('EINVAL', `append_storage takes at most ${MAX_APPEND_RANGES} ranges, got ${ranges.length}`);
    }
    checkRanges(ranges);
    const path = this.devicePath(device);
    const size = LAYOUT.blksnap_sectors.size;
    await this.withCString(path, async (devpath) => {
      if (ranges.length === 0) {
        await this.controlIoctl(request, encodeAppendStorage(id, devpath, 0, 0n));
        return;
      }
      await withMemory(this.layer, ranges.length * size, async (mem) => {
        ranges.forEach((r, i) => mem.buffer.set(encodeSectors(r), i * size));
        await this.controlIoctl(request, encodeAppendStorage(id, devpath, ranges.length, mem.address));
      });
    });
  }

  async snapshotDestroy(id: SnapshotId): Promise<void> {
    await this.controlIoctl(IOCTL_BLKSNAP_SNAPSHOT_DESTROY, encodeUuid(id));
    this.members.delete(id);
    const record = this.storage.get(id);
    this.storage.delete(id);
    // the module no longer writes there: the files may be removed again (a flag that
    // cannot be cleared, on a file system gone read-only, leaves the file in place:
    // the caller's removal reports it)
    if (record) await this.releaseMapped(record).catch(() => undefined);
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

  /**
   * The next event. A mapped snapshot's low_free_space requests (VAL-7.0 append mode)
   * are the module asking this driver, not news for the user: answered here
   * (answerLowFreeSpace) and not reported; the wait goes on for the rest of `timeoutMs`.
   */
  async snapshotWaitEvent(id: SnapshotId, timeoutMs: number): Promise<SnapshotEvent | null> {
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new BlksnapError('EINVAL', `invalid timeout ${timeoutMs}`);
    const deadline = this.nowMs() + timeoutMs;
    for (;;) {
      const event = await this.waitEventOnce(id, Math.max(0, deadline - this.nowMs()));
      if (event?.code !== 'low_free_space' || !this.storage.get(id)?.mapped.length) return event;
      await this.answerLowFreeSpace(id);
      if (this.nowMs() >= deadline) return null;
    }
  }

  private async waitEventOnce(id: SnapshotId, timeoutMs: number): Promise<SnapshotEvent | null> {
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
          // the modules put abs(error) in the event (diff_area.c: `.err_code = abs(...)`,
          // measured +28 on VAL-7.0); CorruptedEvent carries the negative errno
          errCode: -Math.abs(body.errCode),
        };
      }
      case BLKSNAP_EVENT_CODE.no_space:
        // code 1: no_space (lk6.15) or low_free_space (VAL-7.0), the same u64 body
        return { ...base, code: this.dialect.eventCode1, requestedSectors: decodeEventNoSpace(event.data) };
      default:
        throw new BlksnapError('EOPNOTSUPP', `snapshot ${id}: unknown event code ${event.code} from the module`);
    }
  }

  /**
   * A mapped snapshot's answer to low_free_space: an append_storage of no ranges.
   * The module asks again only after an append finds its capacity at least what it
   * requested (snapshot_append_storage clears low_space_flag); without that answer
   * it would stop raising its request and refuse chunks at the request even with
   * appended space left (diff_storage.c, diff_storage_alloc).
   */
  private async answerLowFreeSpace(id: SnapshotId): Promise<void> {
    const file = this.storage.get(id)?.mapped[0];
    // best effort: the event is reported either way, and the next one asks again
    if (file) await this.appendStorage(id, file.device, []).catch(() => undefined);
  }

  // ---- block-device filter commands ----------------------------------------

  private devicePath(device: DeviceRef): string {
    if (!device) throw new BlksnapError('EINVAL', 'no device given');
    return device.startsWith('/') ? device : `${this.devDir}/${device}`;
  }

  /**
   * Where the filter commands for `device` go, for the duration of `fn`: the
   * device's own fd (v6, lk6.15), or /dev/bdevfilter with the device path in layer
   * memory (VAL-7.0). Errors name the device path.
   */
  private async withDevice<T>(device: DeviceRef, fn: (target: FilterTarget) => Promise<T>): Promise<T> {
    const path = this.devicePath(device);
    const byPath = this.dialect.filter === 'bdevfilter';
    const fd = byPath ? await this.openFilterControl() : await this.layer.open(path, O_RDONLY);
    try {
      if (!byPath) return await fn({ fd, path, devpath: 0n });
      return await this.withCString(path, (devpath) => fn({ fd, path, devpath }));
    } catch (err) {
      if (isBlksnapError(err)) throw new BlksnapError(err.errno, `${path}: ${plainMessage(err)}`);
      throw err;
    } finally {
      await this.layer.close(fd).catch(() => undefined);
    }
  }

  private async openFilterControl(): Promise<number> {
    const path = this.dialect.filterControlPath ?? '';
    try {
      return await this.layer.open(path, O_RDWR);
    } catch (err) {
      if (isBlksnapError(err) && err.errno === 'ENOENT') {
        throw new BlksnapError('ENOENT', `${path} does not exist: the bdevfilter kernel module is not loaded`);
      }
      throw err;
    }
  }

  private async filterIoctl(target: FilterTarget, op: 'attach' | 'detach'): Promise<void> {
    const d = this.dialect;
    const struct =
      op === 'attach' ? d.encodeAttach(target.devpath, BLKSNAP_FILTER_NAME) : d.encodeDetach(target.devpath, BLKSNAP_FILTER_NAME);
    const request = op === 'attach' ? d.attachRequest : d.detachRequest;
    await withMemory(this.layer, struct.length, async (mem) => {
      mem.buffer.set(struct);
      try {
        await this.layer.ioctl(target.fd, request, mem.buffer);
      } catch (err) {
        // the attach of a filter never returns these: the kernel does not know the request.
        if (op === 'attach' && isBlksnapError(err) && (err.errno === 'ENOTTY' || err.errno === 'EINVAL')) {
          throw new BlksnapError(err.errno, `${plainMessage(err)} (this kernel has no block-device filter support)`);
        }
        throw err;
      }
    });
  }

  /**
   * A filter ctl with a blksnap command: `opt` is copied into layer memory (its
   * address goes into the ctl struct's opt); the option bytes after the call are returned.
   */
  private async ctl(target: FilterTarget, cmd: number, opt: Buffer): Promise<Buffer> {
    return (await this.ctlWithResult(target, cmd, opt)).out;
  }

  /** ctl() that also gives the ioctl's non-negative return value (cbtmap: bytes read). */
  private async ctlWithResult(target: FilterTarget, cmd: number, opt: Buffer): Promise<{ out: Buffer; ret: number }> {
    const d = this.dialect;
    return withMemory(this.layer, opt.length, async (optMem) => {
      optMem.buffer.set(opt);
      const struct = d.encodeCtl({ devpath: target.devpath, name: BLKSNAP_FILTER_NAME, cmd, optlen: opt.length, opt: optMem.address });
      return withMemory(this.layer, struct.length, async (ctlMem) => {
        ctlMem.buffer.set(struct);
        const ret = await this.layer.ioctl(target.fd, d.ctlRequest, ctlMem.buffer);
        return { out: Buffer.from(optMem.buffer), ret };
      });
    });
  }

  async attach(device: DeviceRef): Promise<void> {
    await this.withDevice(device, (target) => this.filterIoctl(target, 'attach'));
  }

  /**
   * Detach, refused with EBUSY while the device is in a snapshot: the module would
   * detach it anyway (its detach checks only the filter name), and the snapshot's
   * copy-on-write would stop with it.
   */
  async detach(device: DeviceRef): Promise<void> {
    await this.withDevice(device, async (target) => {
      const holders = [...this.members].filter(([, paths]) => paths.has(target.path)).map(([id]) => id);
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
          await this.ctl(target, BLKFILTER_CTL_BLKSNAP.snapshotinfo, Buffer.alloc(LAYOUT.blksnap_snapshotinfo.size)),
        ).image;
      } catch (err) {
        // No blksnap filter: the detach below reports it (ENOENT).
        if (!(isBlksnapError(err) && err.errno === 'ENOENT')) throw err;
      }
      if (image) throw new BlksnapError('EBUSY', `it is in a snapshot (image ${image}): destroy the snapshot first`);
      await this.filterIoctl(target, 'detach');
    });
  }

  async cbtInfo(device: DeviceRef): Promise<CbtInfo> {
    return this.withDevice(device, (target) => this.cbtInfoOf(target));
  }

  private async cbtInfoOf(target: FilterTarget): Promise<CbtInfo> {
    const out = await this.ctl(target, BLKFILTER_CTL_BLKSNAP.cbtinfo, Buffer.alloc(LAYOUT.blksnap_cbtinfo.size));
    return decodeCbtInfo(out);
  }

  async cbtMap(device: DeviceRef, offset: number, length: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new BlksnapError('EINVAL', `invalid CBT map range offset=${offset} length=${length}`);
    }
    return this.withDevice(device, async (target) => {
      const info = await this.cbtInfoOf(target);
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
            target,
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
    checkRanges(ranges);
    await this.withDevice(device, async (target) => {
      // One range per command: the module's loop (seed 001 tracker.c ctl_cbtdirty)
      // re-reads the first array element on every iteration, so count=1 is the form
      // that marks every range on each module version.
      for (const range of ranges) {
        await withMemory(this.layer, LAYOUT.blksnap_sectors.size, async (mem) => {
          mem.buffer.set(encodeSectors(range));
          await this.ctl(target, BLKFILTER_CTL_BLKSNAP.cbtdirty, encodeCbtDirty({ count: 1, dirtySectors: mem.address }));
        });
      }
    });
  }

  async snapshotAdd(id: SnapshotId, device: DeviceRef): Promise<void> {
    const opt = encodeSnapshotAdd(id);
    const path = this.devicePath(device);
    const storage = this.storage.get(id)?.mapped.find((file) => sharesDisk(file, path));
    if (storage) {
      // the module's writes to the storage would pass through this device's own filter
      throw new BlksnapError('EINVAL', `${path}: the difference storage ${storage.path} of snapshot ${id} lies on ${storage.device}, the same disk; a device cannot be in a snapshot whose storage it holds`);
    }
    await this.withDevice(device, async (target) => {
      try {
        await this.filterIoctl(target, 'attach');
      } catch (err) {
        if (!(isBlksnapError(err) && err.errno === 'EALREADY')) throw err;
      }
      await this.ctl(target, BLKFILTER_CTL_BLKSNAP.snapshotadd, opt);
      const paths = this.members.get(id) ?? new Set<string>();
      paths.add(target.path);
      this.members.set(id, paths);
    });
  }

  async snapshotInfo(device: DeviceRef): Promise<SnapshotInfo> {
    // a zeroed struct: VAL-7.0 leaves `image` as the caller gave it before take
    return this.withDevice(device, async (target) =>
      decodeSnapshotInfo(
        await this.ctl(target, BLKFILTER_CTL_BLKSNAP.snapshotinfo, Buffer.alloc(LAYOUT.blksnap_snapshotinfo.size)),
      ),
    );
  }

  async storageInfo(id: SnapshotId): Promise<StorageInfo> {
    const record = this.storage.get(id);
    if (!record) throw new BlksnapError('ESRCH', `snapshot ${id} was not created by this driver`);
    let sectors: number;
    if (record.mapped.length > 0) {
      // reserved in full when mapped: the storage file and every grow file
      return { snapshotId: id, path: record.path, limitSectors: record.limitSectors, allocatedSectors: record.mapped.reduce((n, f) => n + f.sectors, 0), usedSectors: null };
    }
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

  /**
   * Snapshot `id` ended without snapshotDestroy here (another program destroyed it):
   * once the module no longer lists it, its mapped files are released (immutable
   * flag cleared, closed) so that the caller can remove them.
   */
  async releaseGone(id: SnapshotId): Promise<void> {
    const record = this.storage.get(id);
    if (!record) return;
    if ((await this.snapshotCollect()).includes(id)) throw new BlksnapError('EBUSY', `snapshot ${id} still exists: its storage stays held`);
    this.storage.delete(id);
    this.members.delete(id);
    await this.releaseMapped(record);
  }

  /** Clears the immutable flag of each mapped file and closes it; the first failure is thrown after all were tried. */
  private async releaseMapped(record: StorageRecord): Promise<void> {
    const failures: unknown[] = [];
    for (const file of record.mapped) {
      await setImmutable(this.layer, file.fd, false, file.path).catch((err: unknown) => failures.push(err));
      await this.layer.close(file.fd).catch(() => undefined);
    }
    record.mapped = [];
    if (failures.length > 0) throw failures[0];
  }

  /**
   * After a restart of its caller: the storage files of held snapshot `id` (the
   * storage first, then its grow files), opened by the caller (read-only will do) and
   * taken over. Files a driver mapped are immutable: those are held again until
   * destroy (which clears the flag), the module's requests answered, and the storage
   * may grow. Returns false (descriptors closed) when the storage is the module's own file.
   */
  async adoptStorage(id: SnapshotId, files: { fd: number; path: string }[]): Promise<boolean> {
    const closeAll = async (): Promise<void> => {
      for (const f of files) await this.layer.close(f.fd).catch(() => undefined);
    };
    const first = files[0];
    if (!first || this.storage.has(id)) {
      await closeAll();
      return false;
    }
    try {
      if (!(await isImmutable(this.layer, first.fd))) {
        await closeAll();
        return false;
      }
      const mapped: MappedFile[] = files.map(({ fd, path }) => {
        const st = fstatSync(fd);
        const { major, minor } = splitDevT(st.dev);
        const sectors = Math.floor(st.size / SECTOR_SIZE);
        // the ranges were appended before; only the device matters from here on (snapshotAdd)
        return { fd, path, device: this.resolveDevice(major, minor), major, minor, ranges: [], sectors };
      });
      const limitSectors = mapped.reduce((n, f) => n + f.sectors, 0);
      this.storage.set(id, { path: first.path, limitSectors, removable: false, mapped, growRefusal: null });
      return true;
    } catch (err) {
      await closeAll();
      throw err;
    }
  }

  async close(): Promise<void> {
    // mapped files stay immutable: the module still writes there after this driver is gone
    for (const record of this.storage.values()) {
      for (const file of record.mapped) await this.layer.close(file.fd).catch(() => undefined);
      record.mapped = [];
      record.growRefusal = 'this driver was closed';
    }
    const pending = this.controlFd;
    this.controlFd = undefined;
    if (!pending) return;
    const fd = await pending.catch(() => undefined);
    if (fd !== undefined) await this.layer.close(fd).catch(() => undefined);
  }
}
