/**
 * The helper's method implementations: one handler per entry of the protocol's
 * method table, over the driver and its companions (HelperBackends). Validation of
 * params and results happens around it (dispatch.ts); handlers throw BlksnapError.
 */
import { closeSync, ftruncateSync } from 'node:fs';
import { basename } from 'node:path';
import type { z } from 'zod';
import { BlksnapError, isBlksnapError } from '../abi/errno.js';
import type { SnapshotEvent, SnapshotId } from '../abi/types.js';
import { CBT_MAP_ENCODING, encodeCbtMap } from '../protocol/cbt-encoding.js';
import { PROTOCOL_VERSION } from '../protocol/limits.js';
import { CBT_ACTIVE_TABLE_CAPABILITY, EVENT_HISTORY_CAPABILITY, STORAGE_GROW_CAPABILITY } from '../protocol/methods.js';
import type { MethodName, MethodResult, MethodTable, NotificationName, NotificationParams } from '../protocol/methods.js';
import type { DeviceEntry, ExportEntry, ImageEntry, StorageForm, Topic } from '../protocol/schemas.js';
import type { HelperBackends, ImageRecord } from './backends.js';
import { backupHandlers } from './backup-handlers.js';
import { CallerFs } from './caller-fs.js';
import { ownerOf } from './owner.js';
import { resolveBlockDevice, resolveEngineDevice } from './device-resolver.js';
import { EventHistoryStore } from './event-history.js';
import { EventPump } from './event-pump.js';
import { SnapshotBook } from './snapshot-book.js';
import type { SnapshotRecord } from './snapshot-book.js';
import { canGrow, growStorage } from './storage-grow.js';
import { openStorage } from './storage-forms.js';
import { mountsOfEngineDevices, openFreezeTargets } from './freeze-detect.js';
import type { DetectedMount } from './freeze-detect.js';
import { freezeAround } from './fs-freeze.js';
import { SnapshotMetaStore, withMeta } from './snapshot-meta.js';
import type { SettingsStore } from './settings-store.js';
import type { StorageIdentity, StorageLedger } from './storage-ledger.js';
import type { JobRunner } from './jobs.js';
import { WorkloadManager } from './workload.js';
import { engineWriteBypass, tablePartitions } from './devices-wiring.js';

export type HandlerParams<M extends MethodName> = z.output<MethodTable[M]['params']>;

/** Per-connection state a handler may touch. */
export interface ClientContext {
  readonly subscriptions: Set<Topic>;
  /** Aborted when the client disconnects (its waits end instead of taking events nobody reads). */
  readonly closeSignal?: AbortSignal;
}

type Handlers = { [M in MethodName]: (params: HandlerParams<M>, ctx: ClientContext) => Promise<MethodResult<M>> };

export type Broadcast = <N extends NotificationName>(topic: N, params: NotificationParams<N>) => void;

const ALL_TOPICS: Topic[] = ['event', 'snapshot', 'devices', 'progress', 'workload', 'job'];
const OK = { ok: true as const };

export class HelperService {
  readonly book = new SnapshotBook();
  private readonly pumps = new Map<SnapshotId, EventPump>();
  /** Background work (state writes, releases of a gone snapshot's files) not settled yet. */
  private readonly background = new Set<Promise<void>>();
  /** After stopPumps (shutdown): requests still in flight start no new pump. */
  private pumpsStopped = false;
  /** Snapshots a snapshotDestroy of ours is destroying: it, not their pump, announces them. */
  private readonly destroying = new Set<SnapshotId>();
  private readonly goneWhileDestroying = new Set<SnapshotId>();
  readonly workloads: WorkloadManager;
  readonly handlers: Handlers;
  /** Files reached with the rights of the user the helper works for. */
  private readonly files: CallerFs;
  /** Backup, verify and restore jobs (backup-handlers.ts). */
  readonly jobs: JobRunner;

  constructor(
    private readonly backends: HelperBackends,
    private readonly settings: SettingsStore,
    private readonly broadcast: Broadcast,
    private readonly log: (message: string) => void = () => {},
    /** Where created storage files are recorded (cleanup after a crash; kernel snapshots across restarts). */
    private readonly ledger: StorageLedger | null = null,
    /** Names and times of the snapshots, for every client (persisted by the daemon). */
    private readonly meta: SnapshotMetaStore = new SnapshotMetaStore(null),
    /** The events of each snapshot, kept after it ends until dismissed (persisted by the daemon). */
    readonly history: EventHistoryStore = new EventHistoryStore(null),
  ) {
    this.workloads = new WorkloadManager((progress) => this.broadcast('workload', progress));
    this.files = new CallerFs(backends.owner);
    const backup = backupHandlers({
      backends,
      book: this.book,
      files: this.files,
      resolveDevice: (ref) => this.device(ref),
      report: (state) => this.broadcast('job', state),
      log,
      ledger,
    });
    this.jobs = backup.jobs;
    this.handlers = { ...this.makeHandlers(), ...backup.handlers };
  }

  /** Cancels running backup jobs and waits for them (shutdown). */
  async stopJobs(): Promise<void> {
    await this.jobs.cancelAll();
  }

  get capabilities(): string[] {
    const caps = ['events', EVENT_HISTORY_CAPABILITY, 'snapshots.list', `cbtMap.${CBT_MAP_ENCODING}`, 'settings'];
    if (this.backends.engine) caps.push('images', 'storageInfo.used', 'workload', CBT_ACTIVE_TABLE_CAPABILITY);
    if (canGrow(this.backends.engine, this.backends.driver)) caps.push(STORAGE_GROW_CAPABILITY);
    if (this.backends.nbd) caps.push('nbd');
    return caps;
  }

  /** Starts pumps for snapshots that exist already (kernel module snapshots from before). */
  async adoptExisting(): Promise<void> {
    let ids: SnapshotId[];
    try {
      ids = await this.backends.driver.snapshotCollect();
    } catch (err) {
      this.log(`cannot collect existing snapshots: ${(err as Error).message}`);
      return;
    }
    if (this.ledger && !this.backends.engine) {
      // kernel snapshots from before: learn their storage files, so destroying them removes the files
      try {
        for (const rec of await this.ledger.reconcile(new Set(ids), this.log)) {
          const book = this.book.ensure(rec.owner);
          const identity = rec.dev !== undefined && rec.ino !== undefined ? { dev: rec.dev, ino: rec.ino, dirDev: rec.dirDev, dirIno: rec.dirIno, uid: rec.uid } : null;
          if (rec.kind === 'storage-grow') {
            book.growFiles = [...(book.growFiles ?? []), { path: rec.path, identity }];
            continue;
          }
          book.storagePath = rec.path;
          book.storageIdentity = identity;
        }
      } catch (err) {
        this.log(`cannot read the difference-storage records: ${(err as Error).message}`);
      }
      for (const id of ids) await this.adoptStorage(id);
    }
    for (const id of ids) this.ensurePump(id);
  }

  /**
   * A kernel snapshot from before this helper: hands the driver its recorded storage
   * files (still the files created, opened with the rights of their user), so a
   * storage the driver had mapped (VAL-7) is held, can grow and is released at destroy.
   */
  private async adoptStorage(id: SnapshotId): Promise<void> {
    const rec = this.book.get(id);
    const adopt = this.backends.driver.adoptStorage?.bind(this.backends.driver);
    if (!adopt || !rec?.storagePath || !rec.storageIdentity) return;
    const wanted = [{ path: rec.storagePath, identity: rec.storageIdentity }, ...(rec.growFiles ?? [])];
    const opened: { fd: number; path: string }[] = [];
    try {
      for (const { path, identity } of wanted) {
        const files = identity?.uid === undefined || identity.uid === this.backends.owner.uid ? this.files : new CallerFs(ownerOf(identity.uid));
        const file = files.openExisting(path, 'difference storage', { write: false });
        opened.push({ fd: file.fd, path });
        if (!identity || file.dev !== identity.dev || file.ino !== identity.ino) throw new BlksnapError('EEXIST', `${path} is no longer the file the helper created`);
      }
    } catch (err) {
      for (const f of opened) closeFd(f.fd);
      this.log(`snapshot ${id}: its difference storage was not taken back: ${(err as Error).message}`);
      return;
    }
    try {
      if (await adopt(id, opened)) this.log(`snapshot ${id}: took back its mapped difference storage (${opened.length} file${opened.length === 1 ? '' : 's'})`);
    } catch (err) {
      this.log(`snapshot ${id}: its difference storage was not taken back: ${(err as Error).message}`);
    }
  }

  /** Stops every event pump (shutdown), then waits for the state writes and file releases still running. */
  async stopPumps(): Promise<void> {
    this.pumpsStopped = true;
    const pumps = [...this.pumps.values()];
    this.pumps.clear();
    await Promise.all(pumps.map((p) => p.stop()));
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  /** Storage files of snapshots the helper created, still on disk (shutdown cleanup). */
  async removeLeftoverStorage(): Promise<void> {
    for (const rec of this.book.all()) {
      if (!rec.storagePath) continue;
      // without a known identity the path may name anything by now: left alone
      if (rec.storageIdentity && this.removeCreated(rec.storagePath, rec.storageIdentity)) {
        this.log(`removed the difference storage ${rec.storagePath} of snapshot ${rec.id}`);
      }
      await this.ledger?.forget(rec.storagePath);
    }
  }

  /**
   * Shutdown of the embedded engine: its snapshots end with the process, so tell
   * subscribers (a snapshot_watcher then exits normally) and the log which ones.
   */
  announceShutdownOfSnapshots(): void {
    const ids = this.book.all().map((r) => r.id);
    if (ids.length === 0) return;
    this.log(`destroying ${ids.length} snapshot(s) of the embedded engine with the helper: ${ids.join(', ')}`);
    for (const id of ids) {
      void this.keep('the event history', () => this.history.ended(id));
      this.broadcast('snapshot', { id, state: 'destroyed' });
    }
  }

  private ensurePump(id: SnapshotId): EventPump {
    let pump = this.pumps.get(id);
    if (!pump || !pump.running) {
      pump = new EventPump(this.backends.driver, id, () => this.settings.get().eventPollMs, {
        onEvent: (event: SnapshotEvent) => {
          void this.keep('the event history', () => this.history.record(event, this.meta.get(event.snapshotId)?.name ?? null));
          this.broadcast('event', event);
        },
        onGone: (gone) => {
          this.pumps.delete(gone);
          // our own snapshotDestroy: it removes the storage and announces the end itself
          if (this.destroying.has(gone)) this.goneWhileDestroying.add(gone);
          else this.forgetGone(gone);
        },
        onError: (failed, err) => this.log(`event pump of ${failed}: ${(err as Error).message}`),
      });
      if (this.pumpsStopped) {
        // shutting down: a pump started now would outlive the helper (and keep it running)
        void pump.stop();
        return pump;
      }
      this.pumps.set(id, pump);
      pump.start();
    }
    return pump;
  }

  /** A client's device reference -> the driver's (ENOENT / ENODEV when not acceptable). */
  private async device(ref: string): Promise<string> {
    const { engine, images } = this.backends;
    if (!engine) return resolveBlockDevice(ref);
    try {
      return await resolveEngineDevice(engine, ref);
    } catch (err) {
      // registered, but its file could not be opened when the helper started
      const known = images ? (await images.list().catch(() => [])).find((r) => r.name === ref || r.path === ref) : undefined;
      if (!known) throw err;
      throw new BlksnapError(
        'ENODEV',
        `image ${known.name} is registered but its file ${known.path} could not be opened when the helper started (moved or deleted?); ` +
          `put the file back and restart the helper, or unregister it (blksnap-manager image remove ${known.name}) and add the file again`,
      );
    }
  }

  /** Embedded engine: where the snapshot's devices are mounted on this machine through their NBD exports. */
  private async detectedMounts(id: SnapshotId): Promise<DetectedMount[]> {
    const { engine, nbd } = this.backends;
    if (!engine || !nbd) return [];
    const devices = this.book.get(id)?.devices ?? engine.listDevices().filter((d) => d.snapshotId === id).map((d) => d.name);
    try {
      return await mountsOfEngineDevices(devices, nbd.socketPath);
    } catch (err) {
      this.log(`cannot look for mounts of ${devices.join(', ')}: ${(err as Error).message}`);
      return [];
    }
  }

  private checkNotInSnapshot(device: string): void {
    const holder = this.book.holderOf(device);
    if (holder) throw new BlksnapError('EBUSY', `device ${device} is already in snapshot ${holder.id}`);
    const info = this.backends.engine?.listDevices().find((d) => d.name === device);
    if (info?.snapshotId) throw new BlksnapError('EBUSY', `device ${device} is already in snapshot ${info.snapshotId}`);
  }

  private uri(name: string): string | null {
    return this.backends.nbd ? this.backends.nbd.uriFor(name) : null;
  }

  private needImages(): { engine: NonNullable<HelperBackends['engine']>; images: NonNullable<HelperBackends['images']> } {
    const { engine, images } = this.backends;
    if (!engine || !images) {
      throw new BlksnapError('EOPNOTSUPP', 'image devices need the embedded engine (this helper runs the kernel driver)');
    }
    return { engine, images };
  }

  /** Names of the images the helper created (lab disks); none when the registry cannot be read. */
  /**
   * Kernel driver: whether the blksnap filter is attached to a block device, asked of
   * the module (cbtinfo; ENOENT: not attached). Trackers outlive the helper, so its own
   * records cannot say. null when the module cannot tell (no filter support, no medium).
   */
  private async kernelAttached(path: string): Promise<boolean | null> {
    try {
      await this.backends.driver.cbtInfo(path);
      return true;
    } catch (err) {
      return isBlksnapError(err) && err.errno === 'ENOENT' ? false : null;
    }
  }

  private async labDiskNames(): Promise<Set<string>> {
    const records = (await this.backends.images?.list().catch(() => [])) ?? [];
    return new Set(records.filter((r) => r.created).map((r) => r.name));
  }

  private imageEntry(record: ImageRecord): ImageEntry {
    const dev = this.backends.engine?.listDevices().find((d) => d.name === record.name);
    return { name: record.name, path: record.path, capacity: dev?.capacity ?? 0, nbdUri: dev ? this.uri(dev.name) : null };
  }

  /** Opens a registered image in the engine: the very file behind `fd` (checked with the caller's rights). */
  private async openImage(record: ImageRecord, images: NonNullable<HelperBackends['images']>, fd: number): Promise<ImageEntry> {
    const { engine } = this.needImages();
    try {
      await engine.addDevice({ path: record.path, name: record.name, openPath: `/proc/self/fd/${fd}` });
    } catch (err) {
      await images.remove(record.name).catch(() => undefined);
      throw err;
    }
    this.broadcast('devices', { reason: `image ${record.name} added` });
    return this.imageEntry(record);
  }

  private async addToSnapshot(id: SnapshotId, ref: string): Promise<void> {
    const device = await this.device(ref);
    this.checkNotInSnapshot(device);
    await this.backends.driver.snapshotAdd(id, device);
    this.book.ensure(id).devices.push(device);
    this.broadcast('snapshot', { id, state: 'device-added', device });
  }

  private makeHandlers(): Omit<Handlers, keyof ReturnType<typeof backupHandlers>['handlers']> {
    const { driver } = this.backends;
    return {
      hello: async () => ({
        protocolVersion: PROTOCOL_VERSION,
        driver: driver.kind,
        driverVersion: this.backends.driverVersion,
        capabilities: this.capabilities,
        ...(this.backends.kernelModule ? { kernelModule: this.backends.kernelModule } : {}),
        ...(this.backends.engine ? { chunkMinimumBytes: 2 ** this.backends.engine.params.chunkMinimumShift } : {}),
      }),
      version: async () => {
        const version = await driver.version();
        const module = this.backends.kernelModule;
        if (driver.kind !== 'kernel' || !module?.dialect || !module.filter) return version;
        return { ...version, dialect: module.dialect, filter: module.filter };
      },
      snapshotCreate: async ({ diffStoragePath, diffStorageForm = 'new-file', limitSectors, devices, writableImages = false, name }) => {
        const resolved: string[] = [];
        for (const ref of devices ?? []) {
          const device = await this.device(ref);
          this.checkNotInSnapshot(device);
          if (resolved.includes(device)) throw new BlksnapError('EINVAL', `device ${device} is listed twice`);
          resolved.push(device);
        }
        const { id, path, storageIdentity } = await this.createWithStorage(diffStorageForm, diffStoragePath, limitSectors);
        this.book.add({ id, devices: [], taken: false, storagePath: path, limitSectors, storageIdentity, writableImages, storageForm: diffStorageForm });
        await this.recordMeta(() => this.meta.created(id, name ?? null));
        this.ensurePump(id);
        this.broadcast('snapshot', { id, state: 'created' });
        try {
          for (const device of resolved) await this.addToSnapshot(id, device);
        } catch (err) {
          await this.destroy(id).catch(() => undefined);
          throw err;
        }
        return { id };
      },
      snapshotDestroy: async ({ id }) => {
        await this.destroy(id);
        return OK;
      },
      snapshotTake: async ({ id, freeze = [] }) => {
        const targets = await openFreezeTargets(this.files, freeze, () => this.detectedMounts(id));
        const { frozen } = await freezeAround(targets, () => driver.snapshotTake(id), this.log);
        for (const f of frozen) {
          const via = targets.find((t) => t.mountPoint === f.mountPoint)?.via;
          this.log(`snapshot ${id}: froze ${f.mountPoint} (${via ?? 'asked'}) around the take: writers waited ${f.frozenMs} ms, writing out took ${f.freezeMs} ms`);
        }
        this.book.ensure(id).taken = true;
        await this.recordMeta(() => this.meta.taken(id));
        const frozenNote = frozen.map((f) => ({ mountPoint: f.mountPoint, frozenMs: f.frozenMs }));
        this.broadcast('snapshot', { id, state: 'taken', ...(frozen.length > 0 ? { frozen: frozenNote } : {}) });
        return frozen.length > 0 ? { ok: true as const, frozen } : OK;
      },
      snapshotCollect: async () => {
        const ids = await driver.snapshotCollect();
        for (const id of ids) this.ensurePump(id);
        return { ids };
      },
      snapshotWaitEvent: async ({ id, timeoutMs }, ctx) => {
        let pump = this.pumps.get(id);
        if (!pump || !pump.running) {
          const ids = await driver.snapshotCollect();
          if (!ids.includes(id)) throw new BlksnapError('ESRCH', `no snapshot ${id}`);
          pump = this.ensurePump(id);
        }
        return { event: await pump.next(timeoutMs, ctx.closeSignal) };
      },
      snapshotAdd: async ({ id, device }) => {
        await this.addToSnapshot(id, device);
        return OK;
      },
      snapshotInfo: async ({ device }) => {
        const ref = await this.device(device);
        const info = await driver.snapshotInfo(ref);
        const uri = info.image && this.backends.engine ? this.uri(info.image) : null;
        const snapshotId = this.book.holderOf(ref)?.id ?? this.backends.engine?.listDevices().find((d) => d.name === ref)?.snapshotId ?? null;
        const base = { errorCode: info.errorCode, image: info.image, snapshotId };
        return uri ? { ...base, nbdUri: uri } : base;
      },
      storageInfo: ({ id }) => driver.storageInfo(id),
      storageGrow: async ({ id, sectors }) => {
        await growStorage(
          {
            engine: this.backends.engine,
            driver,
            book: this.book,
            files: this.files,
            ledger: this.ledger,
            uid: this.backends.owner.uid,
            remove: (path, identity) => void this.removeCreated(path, identity),
          },
          id,
          sectors,
        );
        this.broadcast('snapshot', { id, state: 'storage-grown' });
        return OK;
      },
      'events.history': async ({ id }) => ({ snapshots: this.history.list(id) }),
      'events.dismiss': async ({ id }) => {
        await this.history.dismiss(id);
        return OK;
      },
      'snapshots.list': async () => {
        const ids = await driver.snapshotCollect();
        return { snapshots: ids.map((id) => withMeta(this.book.summary(id, driver.kind === 'kernel'), this.meta.get(id))) };
      },
      attach: async ({ device }) => {
        await driver.attach(await this.device(device));
        this.broadcast('devices', { reason: `${device} attached` });
        return OK;
      },
      detach: async ({ device }) => {
        await driver.detach(await this.device(device));
        this.broadcast('devices', { reason: `${device} detached` });
        return OK;
      },
      cbtInfo: async ({ device }) => driver.cbtInfo(await this.device(device)),
      cbtMap: async ({ device, offset, length, table }) => {
        const ref = await this.device(device);
        let bytes: Uint8Array;
        if (table === 'active') {
          const { engine } = this.backends;
          if (!engine) throw new BlksnapError('EOPNOTSUPP', 'the active CBT table needs the embedded engine (the kernel module only gives the snapshot table)');
          bytes = await engine.cbtMapActive(ref, offset, length);
        } else {
          bytes = await driver.cbtMap(ref, offset, length);
        }
        return { offset, length: bytes.length, encoding: CBT_MAP_ENCODING, data: encodeCbtMap(bytes) };
      },
      cbtDirty: async ({ device, ranges }) => {
        await driver.cbtDirty(await this.device(device), ranges);
        return OK;
      },
      'devices.list': async () => {
        const devices: DeviceEntry[] = [];
        const labDisks = await this.labDiskNames();
        let block: Awaited<ReturnType<HelperBackends['listBlockDevices']>> = [];
        try {
          block = await this.backends.listBlockDevices();
        } catch (err) {
          this.log(`block-device discovery failed: ${(err as Error).message}`);
        }
        for (const d of this.backends.engine?.listDevices() ?? []) {
          devices.push({
            ref: d.name,
            name: d.name,
            path: d.path,
            kind: 'image',
            capacity: d.capacity,
            labDisk: labDisks.has(d.name),
            partitions: await tablePartitions(d.path),
            bypass: engineWriteBypass(d.path, block),
            attached: d.attached,
            snapshotId: d.snapshotId,
            nbdUri: this.uri(d.name),
          });
        }
        for (const b of block) {
          devices.push({
            ref: b.path,
            name: b.name,
            path: b.path,
            kind: 'block',
            capacity: b.capacity,
            model: b.model ?? null,
            fsType: b.fsType ?? null,
            mountpoints: b.mountpoints ?? [],
            readOnly: b.readOnly ?? false,
            ...(b.type === undefined ? {} : { type: b.type }),
            label: b.label ?? null,
            parents: b.parents ?? [],
            partitions: b.partitions ?? [],
            // what would make the embedded engine refuse to front it (the kernel module snapshots devices in use)
            ...(this.backends.engine ? { blockedBy: b.blockedBy ?? [] } : {}),
            attached: this.backends.engine ? null : await this.kernelAttached(b.path),
            snapshotId: this.backends.engine ? null : (this.book.holderOf(b.path)?.id ?? null),
            nbdUri: null,
          });
        }
        return { devices };
      },
      'images.create': async ({ path, size, name }) => {
        const { images } = this.needImages();
        checkImageName(name);
        if (size % 512 !== 0) throw new BlksnapError('EINVAL', `image size must be a multiple of 512 bytes, got ${size}`);
        const label = name ?? basename(path);
        const created = await this.files.createFile(path, 'lab disk', (pending) => this.ledger?.recordPending(pending, 'image', label, this.backends.owner.uid) ?? Promise.resolve());
        try {
          await this.ledger?.settle(created.path, created);
          ftruncateSync(created.fd, size);
          const record = await images.create(name === undefined ? { path: created.path, size } : { path: created.path, size, name });
          const entry = await this.openImage(record, images, created.fd);
          await this.ledger?.forget(created.path);
          return entry;
        } catch (err) {
          this.removeCreated(created.path, { ...created, uid: this.backends.owner.uid });
          await this.ledger?.forget(created.path);
          throw err;
        } finally {
          closeFd(created.fd);
        }
      },
      'images.add': async ({ path, name }) => {
        const { images } = this.needImages();
        checkImageName(name);
        // the caller must be able to read and write it (block devices: administrators only)
        const opened = this.files.openExisting(path, 'image', { write: true });
        try {
          const record = await images.add(name === undefined ? { path: opened.path } : { path: opened.path, name });
          return await this.openImage(record, images, opened.fd);
        } finally {
          closeFd(opened.fd);
        }
      },
      'images.list': async () => {
        const { images } = this.needImages();
        return { images: (await images.list()).map((r) => this.imageEntry(r)) };
      },
      'images.remove': async ({ image }) => {
        const { engine, images } = this.needImages();
        const name = await resolveEngineDevice(engine, image).catch(async (err: unknown) => {
          // registered but not open (e.g. its file vanished): still allow unregistering
          const known = (await images.list()).find((r) => r.name === image || r.path === image);
          if (known) return known.name;
          throw err;
        });
        if (engine.listDevices().some((d) => d.name === name)) await engine.removeDevice(name);
        await images.remove(name);
        this.broadcast('devices', { reason: `image ${name} removed` });
        return OK;
      },
      'exports.list': async () => {
        const { engine, nbd } = this.backends;
        if (!engine || !nbd) return { socketPath: null, exports: [] };
        const exports: ExportEntry[] = [];
        for (const d of engine.listDevices()) {
          exports.push({ name: d.name, kind: 'device', uri: nbd.uriFor(d.name), capacity: d.capacity, readOnly: nbd.readOnly(d.name) ?? false, snapshotId: d.snapshotId, device: d.name });
        }
        for (const i of engine.listImages()) {
          exports.push({ name: i.name, kind: 'snapshot-image', uri: nbd.uriFor(i.name), capacity: i.capacity, readOnly: nbd.readOnly(i.name) ?? true, snapshotId: i.snapshotId, device: i.device });
        }
        exports.push(...(this.backends.backupExports?.entries((name) => nbd.uriFor(name)) ?? []));
        return { socketPath: nbd.socketPath, exports };
      },
      'workload.start': async ({ device, rateMiBps, pattern }) => {
        const engine = this.backends.engine;
        if (!engine) throw new BlksnapError('EOPNOTSUPP', 'write workloads need the embedded engine');
        const name = await resolveEngineDevice(engine, device);
        if (!(await this.labDiskNames()).has(name)) {
          throw new BlksnapError(
            'EPERM',
            `the write workload overwrites data, so it runs only on lab disks the helper created (Create lab disk, images.create); ` +
              `${name} was added from an existing image or device`,
          );
        }
        this.workloads.start({ name, device: engine.device(name), rateMiBps, pattern });
        return OK;
      },
      'workload.stop': async ({ device }) => {
        const engine = this.backends.engine;
        const name = engine ? await resolveEngineDevice(engine, device).catch(() => device) : device;
        await this.workloads.stop(name);
        return OK;
      },
      'workload.list': async () => ({ workloads: this.workloads.list() }),
      'settings.get': async () => this.settings.get(),
      'settings.set': async (patch) => this.settings.update(patch),
      subscribe: async ({ topics }, ctx) => {
        for (const t of topics ?? ALL_TOPICS) ctx.subscriptions.add(t);
        return { topics: [...ctx.subscriptions] };
      },
      unsubscribe: async ({ topics }, ctx) => {
        for (const t of topics ?? ALL_TOPICS) ctx.subscriptions.delete(t);
        return { topics: [...ctx.subscriptions] };
      },
    };
  }

  /** Metadata is a convenience: a failure to persist it is logged, never fails the snapshot operation. */
  private recordMeta(write: () => Promise<void>): Promise<void> {
    return this.keep('the snapshot names and times', write);
  }

  /**
   * Writes helper state; a failure is logged, never fails the operation that caused
   * it. Tracked until it settles, so that shutdown (stopPumps) waits for it.
   */
  private keep(what: string, write: () => Promise<void>): Promise<void> {
    return this.tracked(
      (async () => {
        try {
          await write();
        } catch (err) {
          this.log(`cannot save ${what}: ${(err as Error).message}`);
        }
      })(),
    );
  }

  /** Work started in the background (not awaited by its caller), until it settles. */
  private tracked(work: Promise<void>): Promise<void> {
    this.background.add(work);
    const done = (): void => void this.background.delete(work);
    work.then(done, done);
    return work;
  }

  /** A snapshot the driver no longer knows, destroyed by someone else (e.g. the blksnap tool). */
  private forgetGone(id: SnapshotId): void {
    void this.recordMeta(() => this.meta.forget(id));
    void this.keep('the event history', () => this.history.ended(id));
    const rec = this.book.delete(id);
    if (!rec) return;
    void this.tracked(this.releaseAfterGone(id, rec));
    this.broadcast('snapshot', { id, state: 'destroyed' });
  }

  /** The files of a snapshot another program destroyed: the driver lets go of them first (mapped storage, VAL-7), then they are ours to remove. */
  private async releaseAfterGone(id: SnapshotId, rec: SnapshotRecord): Promise<void> {
    try {
      await this.backends.driver.releaseGone?.(id);
    } catch (err) {
      this.log(`snapshot ${id}: its difference storage stays held: ${(err as Error).message}`);
      return;
    }
    if (rec.storagePath) await this.releaseStorage(rec.storagePath, rec.storageIdentity ?? null);
    for (const grown of rec.growFiles ?? []) await this.releaseStorage(grown.path, grown.identity);
  }

  private async destroy(id: SnapshotId): Promise<void> {
    this.destroying.add(id);
    try {
      await this.backends.driver.snapshotDestroy(id);
    } catch (err) {
      // it failed, but the pump saw the snapshot go meanwhile: that end still needs its cleanup
      if (this.goneWhileDestroying.has(id)) this.forgetGone(id);
      throw err;
    } finally {
      this.destroying.delete(id);
      this.goneWhileDestroying.delete(id);
    }
    const pump = this.pumps.get(id);
    this.pumps.delete(id);
    await pump?.stop();
    const rec = this.book.delete(id);
    await this.recordMeta(() => this.meta.forget(id));
    await this.keep('the event history', () => this.history.ended(id));
    // only a file the helper created is removed: an existing file, a device or an unnamed file never
    if (rec?.storagePath && (rec.storageForm ?? 'new-file') === 'new-file') await this.releaseStorage(rec.storagePath, rec.storageIdentity ?? null);
    for (const grown of rec?.growFiles ?? []) await this.releaseStorage(grown.path, grown.identity);
    this.broadcast('snapshot', { id, state: 'destroyed' });
  }

  /** Removes a destroyed snapshot's storage file (only the file the helper created) and its record. */
  private async releaseStorage(path: string, identity: StorageIdentity | null): Promise<void> {
    try {
      // without a known identity the path may name anything by now: left alone
      if (identity) this.removeCreated(path, identity);
      else this.log(`left the difference storage ${path} in place: it could not be identified as the file the helper created`);
      await this.ledger?.forget(path);
    } catch (err) {
      this.log(`cannot remove the difference storage ${path}: ${(err as Error).message}`);
    }
  }

  /**
   * Removes a file the helper created, if it is still that file, with the rights of
   * the user it was created for: from the directory it was created in, held open
   * since (wherever it has been moved), or else reached by its path again.
   */
  private removeCreated(path: string, identity: StorageIdentity): boolean {
    const files = identity.uid === undefined || identity.uid === this.backends.owner.uid ? this.files : new CallerFs(ownerOf(identity.uid));
    if (identity.dirFd !== undefined) {
      const dirFd = identity.dirFd;
      delete identity.dirFd;
      try {
        return files.removeIn(dirFd, basename(path), identity, path);
      } finally {
        closeFd(dirFd);
      }
    }
    const dir = identity.dirDev !== undefined && identity.dirIno !== undefined ? { dev: identity.dirDev, ino: identity.dirIno } : null;
    if (!dir) return false; // never by path alone
    return files.removeIfSame(path, identity, dir);
  }

  /**
   * Opens or creates the difference storage in its form with the caller's rights (a
   * new file is recorded in the ledger before it has its name) and the snapshot over
   * it; on failure nothing the helper created is left.
   */
  private async createWithStorage(
    form: StorageForm,
    diffStoragePath: string,
    limitSectors: number,
  ): Promise<{ id: SnapshotId; path: string; storageIdentity: StorageIdentity | null }> {
    const uid = this.backends.owner.uid;
    const storage = await openStorage(this.files, form, diffStoragePath, {
      holdExclusive: this.backends.driver.storageByPath !== true,
      beforeLink: (pending) => (this.ledger ? this.ledger.recordPending(pending, 'storage', PENDING_SNAPSHOT, uid) : Promise.resolve()),
    });
    const created = storage.created;
    let storageIdentity: StorageIdentity | null = null;
    if (created) {
      storageIdentity = { dev: created.dev, ino: created.ino, dirDev: created.dirDev, dirIno: created.dirIno, uid };
      if (created.dirFd !== undefined) storageIdentity.dirFd = created.dirFd;
    }
    let id: SnapshotId;
    try {
      if (created) await this.ledger?.settle(created.path, created);
      // the driver takes the descriptor over (and closes it, also on failure)
      // a new file can grow later where the driver allows it (VAL-7.0: mapped, append mode)
      id = await this.backends.driver.snapshotCreate({ diffStoragePath: storage.path, limitSectors, diffStorageFd: storage.fd, growable: form === 'new-file' });
    } catch (err) {
      if (created && storageIdentity) {
        this.removeCreated(created.path, storageIdentity);
        await this.ledger?.forget(created.path).catch(() => undefined);
      }
      throw err;
    }
    if (created) {
      try {
        await this.ledger?.relabel(created.path, id);
      } catch (err) {
        this.log(`cannot record the difference storage ${created.path}: ${(err as Error).message}`);
      }
    }
    this.log(`snapshot ${id}: difference storage ${form === 'directory' ? `an unnamed file in ${storage.path}` : storage.path} (${form})`);
    return { id, path: storage.path, storageIdentity };
  }
}

/** The ledger's label of a storage file whose snapshot does not exist yet. */
const PENDING_SNAPSHOT = '(being created)';

function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

function checkImageName(name: string | undefined): void {
  if (name !== undefined && /^blksnap-image/.test(name)) {
    throw new BlksnapError('EINVAL', 'names starting with "blksnap-image" are reserved for snapshot images');
  }
}
