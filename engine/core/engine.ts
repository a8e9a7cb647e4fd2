/**
 * The embedded blksnap engine: the BlksnapDriver in userspace (seed 001: main.c
 * ioctls, snapshot.c, tracker.c ctl commands) over engine devices whose writes go
 * through the engine. See docs/engine.md for the mapping and the differences.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { BlksnapError } from '../abi/errno.js';
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
import type { BlockDevice } from './block-device.js';
import { DiffArea } from './diff-area.js';
import { DiffStorage, REAL_STORAGE_FILE_OPS } from './diff-storage.js';
import type { StorageFileOps } from './diff-storage.js';
import type { AddDeviceOptions, EmbeddedEngineApi, EngineDeviceInfo, EngineImageInfo } from './embedded-api.js';
import { EngineDevice } from './engine-device.js';
import { fromNodeError } from './errors.js';
import { EventQueue } from './event-queue.js';
import { FileBlockDevice, splitDevT } from './file-block-device.js';
import { resolveParams } from './params.js';
import type { ModuleParams } from './params.js';
import { Snapshot } from './snapshot.js';
import { SnapshotImage } from './snapshot-image.js';
import { Tracker } from './tracker.js';

/** The module version reported by IOCTL_BLKSNAP_VERSION (main.c: 2.0.0.0). */
export const ENGINE_VERSION: BlksnapVersion = { major: 2, minor: 0, revision: 0, build: 0 };

/** BLKSNAP_IMAGE_NAME */
export const IMAGE_NAME_PREFIX = 'blksnap-image';

/** Major number of image-file devices: 240 is in the "local/experimental use" range of devices.txt. */
export const FILE_DEVICE_MAJOR = 240;

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface EmbeddedEngineOptions {
  params?: Partial<ModuleParams>;
  /** How difference-storage files reserve space and are written (tests simulate a full file system with it). */
  storageFile?: StorageFileOps;
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export class EmbeddedEngine implements EmbeddedEngineApi {
  readonly kind = 'embedded' as const;
  readonly params: ModuleParams;
  private readonly storageFile: StorageFileOps;
  private readonly devices = new Map<string, EngineDevice>();
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly images = new Map<string, SnapshotImage>();
  private ctl: Promise<unknown> = Promise.resolve();
  private nextFileMinor = 0;
  private closed = false;

  constructor(options: EmbeddedEngineOptions = {}) {
    this.params = resolveParams(options.params);
    this.storageFile = options.storageFile ?? REAL_STORAGE_FILE_OPS;
  }

  /** Control operations run one at a time (the module's ctl_lock / snapshot rw_lock). */
  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.ctl.then(() => {
      if (this.closed) throw new BlksnapError('ENODEV', 'the engine is closed');
      return fn();
    });
    this.ctl = run.catch(() => undefined);
    return run;
  }

  // ---- devices ---------------------------------------------------------------

  private findDevice(ref: DeviceRef): EngineDevice | undefined {
    const byName = this.devices.get(ref);
    if (byName) return byName;
    if (typeof ref !== 'string' || ref === '') return undefined;
    const abs = nodePath.resolve(ref);
    for (const d of this.devices.values()) if (d.path === abs) return d;
    return undefined;
  }

  private resolveDevice(ref: DeviceRef): EngineDevice {
    const d = this.findDevice(ref);
    if (!d) throw new BlksnapError('ENOENT', `no engine device ${String(ref)}`);
    return d;
  }

  private deviceInfo(d: EngineDevice): EngineDeviceInfo {
    return {
      name: d.name,
      path: d.path,
      capacity: d.capacity,
      devMajor: d.devMajor,
      devMinor: d.devMinor,
      attached: d.tracker !== null,
      snapshotId: d.tracker?.snapshot?.id ?? null,
    };
  }

  private defaultName(path: string): string {
    let base = nodePath.basename(path).replace(/\.(img|raw|bin|disk)$/i, '');
    base = base.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 56);
    if (base === '' || base.startsWith(IMAGE_NAME_PREFIX)) base = `disk${base === '' ? '' : '-' + base}`;
    let name = base;
    for (let i = 2; this.devices.has(name); i++) name = `${base}-${i}`;
    return name;
  }

  addDevice(options: AddDeviceOptions): Promise<EngineDeviceInfo> {
    return this.serialize(async () => {
      if (typeof options?.path !== 'string' || options.path === '') {
        throw new BlksnapError('EINVAL', 'a device path is required');
      }
      const abs = nodePath.resolve(options.path);
      if (options.name !== undefined) {
        if (typeof options.name !== 'string' || !NAME_RE.test(options.name) || options.name.startsWith(IMAGE_NAME_PREFIX)) {
          throw new BlksnapError('EINVAL', `invalid device name ${JSON.stringify(options.name)}`);
        }
        if (this.devices.has(options.name)) throw new BlksnapError('EEXIST', `a device named ${options.name} exists`);
      }
      let st: fs.Stats;
      try {
        // openPath: the checked descriptor's file itself; otherwise what the path names now
        st = await fs.promises.stat(options.openPath ?? (await fs.promises.realpath(abs)));
      } catch (err) {
        throw fromNodeError(err, `cannot open ${abs}`);
      }
      for (const d of this.devices.values()) {
        const i = d.raw.info;
        const same = st.isBlockDevice()
          ? i.isBlockDevice && i.rdev === st.rdev
          : !i.isBlockDevice && i.dev === st.dev && i.ino === st.ino;
        if (same) throw new BlksnapError('EBUSY', `${abs} is already open as ${d.name}`);
      }
      const name = options.name ?? this.defaultName(abs);
      const raw = await FileBlockDevice.open(options.openPath ?? abs, name, abs);
      let major: number;
      let minor: number;
      if (raw.info.isBlockDevice) ({ major, minor } = splitDevT(raw.info.rdev));
      else {
        major = FILE_DEVICE_MAJOR;
        minor = this.nextFileMinor++;
      }
      const dev = new EngineDevice(raw, major, minor);
      this.devices.set(name, dev);
      return this.deviceInfo(dev);
    });
  }

  removeDevice(ref: DeviceRef): Promise<void> {
    return this.serialize(async () => {
      const d = this.resolveDevice(ref);
      if (d.tracker?.snapshot) throw new BlksnapError('EBUSY', `${d.name} is in snapshot ${d.tracker.snapshot.id}`);
      await d.gate.freeze();
      this.devices.delete(d.name);
      const removing = d.remove();
      d.gate.unfreeze();
      await removing;
    });
  }

  listDevices(): EngineDeviceInfo[] {
    return [...this.devices.values()].map((d) => this.deviceInfo(d));
  }

  device(ref: DeviceRef): BlockDevice {
    return this.resolveDevice(ref);
  }

  listImages(): EngineImageInfo[] {
    return [...this.images.values()].map((img) => ({
      name: img.name,
      device: img.deviceName,
      snapshotId: img.snapshotId,
      capacity: img.capacity,
    }));
  }

  image(name: string): BlockDevice {
    const img = this.images.get(name);
    if (!img) throw new BlksnapError('ENOENT', `no snapshot image ${String(name)}`);
    return img;
  }

  // ---- module ioctls --------------------------------------------------------------

  async version(): Promise<BlksnapVersion> {
    return { ...ENGINE_VERSION };
  }

  snapshotCreate(params: SnapshotCreateParams): Promise<SnapshotId> {
    return this.serialize(async () => {
      const path = params?.diffStoragePath;
      const limit = params?.limitSectors;
      const givenFd = params?.diffStorageFd;
      try {
        if (typeof path !== 'string' || path === '') throw new BlksnapError('EINVAL', 'a difference storage path is required');
        if (!isNonNegInt(limit)) throw new BlksnapError('EINVAL', `invalid difference storage limit ${String(limit)}`);
      } catch (err) {
        // a given descriptor is ours to close, also when the call fails
        if (givenFd !== undefined) fs.closeSync(givenFd);
        throw err;
      }
      const id = randomUUID();
      const events = new EventQueue(id);
      const storage = await DiffStorage.create(nodePath.resolve(path), limit, this.params, events, givenFd, this.storageFile);
      this.snapshots.set(id, new Snapshot(id, storage, events));
      return id;
    });
  }

  private getSnapshot(id: SnapshotId, errno: 'ESRCH' | 'ENODEV' = 'ESRCH'): Snapshot {
    const s = typeof id === 'string' ? this.snapshots.get(id.toLowerCase()) : undefined;
    if (!s || s.destroyed) throw new BlksnapError(errno, `no snapshot ${String(id)}`);
    return s;
  }

  snapshotDestroy(id: SnapshotId): Promise<void> {
    return this.serialize(async () => {
      // snapshot_destroy() answers -ENODEV for an unknown id.
      const s = this.getSnapshot(id, 'ENODEV');
      await this.destroySnapshot(s);
    });
  }

  private async destroySnapshot(s: Snapshot): Promise<void> {
    s.destroyed = true;
    this.snapshots.delete(s.id);
    // snapimage_free(): no new image I/O; wait for what is in flight.
    await Promise.all(s.images.map((img) => img.release()));
    for (const img of s.images) this.images.delete(img.name);
    s.images.length = 0;
    // tracker_release_snapshot(): with the devices' writes drained.
    await Promise.all(s.devices.map((d) => d.gate.freeze()));
    const areas: DiffArea[] = [];
    for (const d of s.devices) {
      const t = d.tracker;
      if (!t) continue;
      const da = t.releaseSnapshot();
      if (da) areas.push(da);
      t.snapshot = null;
    }
    for (const d of s.devices) d.gate.unfreeze();
    s.devices.length = 0;
    await Promise.all(areas.map((da) => da.shutdown()));
    s.events.close();
    await s.storage.close();
  }

  snapshotTake(id: SnapshotId): Promise<void> {
    return this.serialize(async () => {
      const s = this.getSnapshot(id);
      if (s.isTaken) throw new BlksnapError('EALREADY', `snapshot ${s.id} is already taken`);
      if (s.devices.length === 0) throw new BlksnapError('ENODEV', `snapshot ${s.id} has no devices`);
      // diff_area_new() for every device first (may fail with EFAULT).
      const areas = s.devices.map(
        (d) =>
          new DiffArea(d.raw, s.storage, this.params, s.events, {
            name: d.name,
            devMajor: d.devMajor,
            devMinor: d.devMinor,
          }),
      );
      // Coherent take: drain and hold the writes of every device of the snapshot,
      // switch all CBT maps and enable copy-on-write everywhere, then let writes go.
      await Promise.all(s.devices.map((d) => d.gate.freeze()));
      try {
        s.devices.forEach((d, i) => d.tracker!.takeSnapshot(areas[i]!, d.capacity / SECTOR_SIZE));
        s.isTaken = true;
        for (const [i, d] of s.devices.entries()) {
          const name = this.allocImageName();
          const img = new SnapshotImage(
            name,
            d.name,
            s.id,
            d.tracker!.cbt.deviceCapacitySectors * SECTOR_SIZE,
            d.logicalBlockSize,
            d.physicalBlockSize,
            d.tracker!,
            areas[i]!,
          );
          d.tracker!.imageName = name;
          this.images.set(name, img);
          s.images.push(img);
        }
      } finally {
        for (const d of s.devices) d.gate.unfreeze();
      }
    });
  }

  /** The smallest free N of "blksnap-imageN" (the module allocates image minors the same way). */
  private allocImageName(): string {
    for (let n = 0; ; n++) {
      const name = `${IMAGE_NAME_PREFIX}${n}`;
      if (!this.images.has(name)) return name;
    }
  }

  async snapshotCollect(): Promise<SnapshotId[]> {
    return [...this.snapshots.values()].filter((s) => !s.destroyed).map((s) => s.id);
  }

  async snapshotWaitEvent(id: SnapshotId, timeoutMs: number): Promise<SnapshotEvent | null> {
    const s = this.getSnapshot(id);
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
      throw new BlksnapError('EINVAL', `invalid timeout ${String(timeoutMs)}`);
    }
    return s.events.wait(timeoutMs);
  }

  // ---- filter commands -------------------------------------------------------------

  attach(ref: DeviceRef): Promise<void> {
    return this.serialize(async () => {
      const d = this.resolveDevice(ref);
      if (d.tracker) throw new BlksnapError('EALREADY', `the blksnap filter is already attached to ${d.name}`);
      await this.attachTracker(d);
    });
  }

  private async attachTracker(d: EngineDevice): Promise<void> {
    await d.gate.freeze();
    d.tracker = new Tracker(d.capacity / SECTOR_SIZE, this.params);
    d.gate.unfreeze();
  }

  detach(ref: DeviceRef): Promise<void> {
    return this.serialize(async () => {
      const d = this.resolveDevice(ref);
      if (!d.tracker) throw new BlksnapError('ENOENT', `no blksnap filter on ${d.name}`);
      if (d.tracker.snapshot) throw new BlksnapError('EBUSY', `${d.name} is in snapshot ${d.tracker.snapshot.id}`);
      await d.gate.freeze();
      d.tracker = null;
      d.gate.unfreeze();
    });
  }

  private trackerOf(ref: DeviceRef): Tracker {
    const d = this.resolveDevice(ref);
    if (!d.tracker) throw new BlksnapError('ENOENT', `no blksnap filter on ${d.name}`);
    return d.tracker;
  }

  async cbtInfo(ref: DeviceRef): Promise<CbtInfo> {
    const cbt = this.trackerOf(ref).cbt;
    return {
      deviceCapacity: cbt.deviceCapacitySectors * SECTOR_SIZE,
      blockSize: 2 ** cbt.blkSizeShift,
      blockCount: cbt.blkCount,
      generationId: cbt.generationId,
      // ctl_cbtinfo() reports snap_number_previous: the number of the last take.
      changesNumber: cbt.snapNumberPrevious & 0xff,
    };
  }

  async cbtMap(ref: DeviceRef, offset: number, length: number): Promise<Uint8Array> {
    // ctl_cbtmap() copies from the read table (the state at the last take).
    return this.cbtPortion(ref, offset, length, 'read');
  }

  /**
   * Engine extension (not in the v6 ABI): a portion of the *write* (active) table,
   * where writes since the last take already carry the active change number. Same
   * portion semantics and errnos as cbtMap().
   */
  async cbtMapActive(ref: DeviceRef, offset: number, length: number): Promise<Uint8Array> {
    return this.cbtPortion(ref, offset, length, 'write');
  }

  private cbtPortion(ref: DeviceRef, offset: number, length: number, table: 'read' | 'write'): Uint8Array {
    const cbt = this.trackerOf(ref).cbt;
    if (cbt.isCorrupted) throw new BlksnapError('EFAULT', 'the CBT table is corrupted');
    if (!isNonNegInt(offset) || !isNonNegInt(length)) {
      throw new BlksnapError('EINVAL', `invalid CBT map portion offset=${String(offset)} length=${String(length)}`);
    }
    if (offset > cbt.blkCount) throw new BlksnapError('ENODATA', `offset ${offset} is beyond the CBT map of ${cbt.blkCount} blocks`);
    const map = table === 'read' ? cbt.readMap : cbt.writeMap;
    return map.slice(offset, Math.min(cbt.blkCount, offset + length));
  }

  async cbtDirty(ref: DeviceRef, ranges: SectorRange[]): Promise<void> {
    const cbt = this.trackerOf(ref).cbt;
    if (!Array.isArray(ranges)) throw new BlksnapError('EINVAL', 'ranges must be an array');
    for (const r of ranges) {
      if (!isNonNegInt(r?.offset) || !isNonNegInt(r?.count)) {
        throw new BlksnapError('EINVAL', `invalid sector range ${JSON.stringify(r)}`);
      }
    }
    for (const r of ranges) cbt.setBoth(r.offset, r.count);
  }

  snapshotAdd(id: SnapshotId, ref: DeviceRef): Promise<void> {
    return this.serialize(async () => {
      const d = this.resolveDevice(ref);
      const s = this.getSnapshot(id);
      if (s.devices.includes(d)) throw new BlksnapError('EALREADY', `${d.name} is already in snapshot ${s.id}`);
      const other = d.tracker?.snapshot;
      if (other) throw new BlksnapError('EBUSY', `${d.name} is in snapshot ${other.id}`);
      if (s.isTaken) throw new BlksnapError('EALREADY', `snapshot ${s.id} is already taken`);
      if (!d.tracker) await this.attachTracker(d);
      const t = d.tracker!;
      t.snapshot = s;
      s.devices.push(d);
    });
  }

  async snapshotInfo(ref: DeviceRef): Promise<SnapshotInfo> {
    const t = this.trackerOf(ref);
    const da = t.diffArea;
    return {
      errorCode: da && da.corrupted ? da.errorCode : 0,
      image: t.imageName ?? '',
    };
  }

  async storageGrow(id: SnapshotId, sectors: number): Promise<void> {
    this.getSnapshot(id).storage.raiseLimit(sectors);
  }

  async storageInfo(id: SnapshotId): Promise<StorageInfo> {
    const s = this.getSnapshot(id);
    return {
      snapshotId: s.id,
      path: s.storage.path,
      limitSectors: s.storage.limit,
      allocatedSectors: await s.storage.allocatedSectors(),
      usedSectors: s.storage.filled,
    };
  }

  /** Destroys every snapshot (removing the storage files) and closes every device. */
  close(): Promise<void> {
    return this.serialize(async () => {
      for (const s of [...this.snapshots.values()]) await this.destroySnapshot(s);
      for (const d of [...this.devices.values()]) {
        await d.gate.freeze();
        const removing = d.remove();
        d.gate.unfreeze();
        await removing;
      }
      this.devices.clear();
      this.closed = true;
    });
  }
}

export function createEmbeddedEngine(options: EmbeddedEngineOptions = {}): EmbeddedEngine {
  return new EmbeddedEngine(options);
}
