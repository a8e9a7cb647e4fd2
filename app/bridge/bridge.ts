/**
 * The contract (app/shared BlksnapApi) implemented over the helper: every request
 * becomes helper protocol calls on the HelperLink; helper notifications become the
 * contract's event streams. Requests never reject: failures are Result errors.
 * Shared by app/main (Electron IPC) and app/web (WebSocket).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeCbtMap } from '../../engine/protocol/cbt-encoding.js';
import { HelperCallError } from '../../engine/protocol/client.js';
import type { HelperClient } from '../../engine/protocol/client.js';
import { MAX_CBT_MAP_LENGTH } from '../../engine/protocol/limits.js';
import { activeChangeNumber, CBT_ACTIVE_TABLE } from '../shared/cbt.js';
import type { BlksnapApi, RequestName, RequestParams, RequestResult } from '../shared/contract.js';
import { ok } from '../shared/result.js';
import type { Result } from '../shared/result.js';
import type {
  AppStatus,
  CbtMapEntry,
  DeviceEntry,
  HelperState,
  JobEntry,
  SnapshotEntry,
  SnapshotEventEntry,
  WorkloadProgress,
} from '../shared/types.js';
import { toBackupExport, toBackupPlan, toCatalog, toJobEntry } from './backup-mapping.js';
import { Emitter } from './emitter.js';
import { BridgeError, errResult } from './errors.js';
import { listFilesystems } from './filesystems.js';
import { HelperLink } from './helper-link.js';
import type { HelperLinkOptions } from './helper-link.js';
import {
  SECTOR_SIZE,
  imageToDeviceEntry,
  parseVersion,
  toCbtInfoEntry,
  toDeviceEntry,
  toKernelModuleHealth,
  toSnapshotDevice,
  toSnapshotEntry,
  toStorageGauge,
  toWorkloadProgress,
} from './mapping.js';

export interface BridgeOptions extends HelperLinkOptions {
  /** The application version for getStatus. */
  appVersion: string;
  /** Where createLabDisk puts `<name>.img` when given a name only. */
  labDir: string;
  /** For tests: another mountinfo file. */
  mountinfoPath?: string;
}

export interface Bridge {
  readonly api: BlksnapApi;
  readonly link: HelperLink;
  /** Connects (or starts) the helper; resolves once connected or failed (see api.getStatus). */
  start(): Promise<void>;
  /** Closes the helper connection (the helper keeps running). */
  close(): void;
}

type Impl = { [K in RequestName]: (params: RequestParams<K>) => Promise<RequestResult<K>> };

async function wrap<T>(fn: () => Promise<T>): Promise<Result<T>> {
  try {
    return ok(await fn());
  } catch (error) {
    return errResult(error);
  }
}

export function createBridge(options: BridgeOptions): Bridge {
  const link = new HelperLink(options);
  const snapshotEvents = new Emitter<SnapshotEventEntry>();
  const workloadProgress = new Emitter<WorkloadProgress>();
  const helperState = new Emitter<HelperState>();
  const jobs = new Emitter<JobEntry>();
  link.onState((state) => helperState.emit(state));
  link.onClient((client) => {
    client.on('event', (event) => snapshotEvents.emit(event));
    client.on('workload', (progress) => workloadProgress.emit(toWorkloadProgress(progress)));
    client.on('job', (job) => jobs.emit(toJobEntry(job)));
  });

  /** Waits briefly for a connection under way, so a page asking at load time sees it connected. */
  const status = async (maxWaitMs = 3000): Promise<AppStatus> => {
    await link.settled(maxWaitMs);
    const hello = link.hello;
    return {
      driver: hello?.driver ?? null,
      driverVersion: hello ? parseVersion(hello.driverVersion) : null,
      appVersion: options.appVersion,
      protocolVersion: hello?.protocolVersion ?? null,
      capabilities: hello ? [...hello.capabilities] : [],
      kernelModule: hello?.kernelModule ? toKernelModuleHealth(hello.kernelModule) : null,
      helper: link.state,
      ...(hello?.chunkMinimumBytes !== undefined ? { chunkBytes: hello.chunkMinimumBytes } : {}),
    };
  };

  const client = (): Promise<HelperClient> => link.current();

  const devices = async (): Promise<DeviceEntry[]> => {
    const { devices: list } = await (await client()).call('devices.list', {});
    return list.map(toDeviceEntry);
  };

  /**
   * Engine devices are tracked from the moment they are opened (the blksnap filter
   * attached), so their CBT map shows every write; the contract has no attach request.
   */
  const deviceAfterImage = async (image: { name: string; path: string; capacity: number; nbdUri: string | null }, labDisk: boolean): Promise<DeviceEntry> => {
    try {
      await (await client()).call('attach', { device: image.name });
    } catch (error) {
      if (!(error instanceof HelperCallError && error.errno === 'EALREADY')) throw error;
    }
    try {
      const found = (await devices()).find((d) => d.id === image.name);
      if (found) return found;
    } catch {
      // the image exists; the listing is only for the extra details
    }
    return imageToDeviceEntry(image, labDisk);
  };

  const impl: Impl = {
    getStatus: () => status(),
    reconnect: async () => {
      try {
        await link.reconnect();
      } catch {
        // reported through the status' helper state
      }
      return status(0);
    },
    listDevices: () => devices(),
    createLabDisk: async ({ name, path, sizeBytes }) => {
      let target = path;
      if (target === undefined) {
        if (name === undefined) throw new BridgeError('EINVAL', 'Give a name or a path for the lab disk.');
        await mkdir(options.labDir, { recursive: true, mode: 0o700 });
        target = join(options.labDir, `${name}.img`);
      }
      const params = name === undefined ? { path: target, size: sizeBytes } : { path: target, size: sizeBytes, name };
      return deviceAfterImage(await (await client()).call('images.create', params), true);
    },
    addImage: async ({ path, name }) => {
      const params = name === undefined ? { path } : { path, name };
      return deviceAfterImage(await (await client()).call('images.add', params), false);
    },
    removeImage: async ({ device }) => {
      await (await client()).call('images.remove', { image: device });
      return null;
    },
    listFilesystems: () => listFilesystems(options.mountinfoPath),
    snapshotCreate: async ({ devices: list, storagePath, storageForm, limitBytes, writableImages = false, name }) => {
      const limitSectors = Math.floor(limitBytes / SECTOR_SIZE);
      if (limitSectors < 1) throw new BridgeError('EINVAL', 'The storage limit must be at least 512 bytes.');
      const { id } = await (await client()).call('snapshotCreate', {
        diffStoragePath: storagePath,
        ...(storageForm !== undefined ? { diffStorageForm: storageForm } : {}),
        limitSectors,
        devices: list,
        writableImages,
        ...(name !== undefined ? { name } : {}),
      });
      return { snapshotId: id };
    },
    snapshotTake: async ({ snapshotId }) => {
      await (await client()).call('snapshotTake', { id: snapshotId });
      return null;
    },
    getStorageAllocation: async () => {
      const s = await (await client()).call('settings.get', {});
      return s.diffStorageDir === null ? null : { directory: s.diffStorageDir, limitBytes: s.diffStorageLimitSectors * SECTOR_SIZE };
    },
    setStorageAllocation: async ({ directory, limitBytes }) => {
      const s = await (await client()).call('settings.set', { diffStorageDir: directory, diffStorageLimitSectors: Math.floor(limitBytes / SECTOR_SIZE) });
      return { directory: s.diffStorageDir ?? directory, limitBytes: s.diffStorageLimitSectors * SECTOR_SIZE };
    },
    listEventHistory: async () => (await (await client()).call('events.history', {})).snapshots,
    dismissEventHistory: async ({ snapshotId }) => {
      await (await client()).call('events.dismiss', { id: snapshotId });
      return null;
    },
    snapshotGrowStorage: async ({ snapshotId, addBytes }) => {
      await (await client()).call('storageGrow', { id: snapshotId, sectors: Math.floor(addBytes / SECTOR_SIZE) });
      return null;
    },
    snapshotDestroy: async ({ snapshotId }) => {
      await (await client()).call('snapshotDestroy', { id: snapshotId });
      return null;
    },
    listSnapshots: async () => {
      const c = await client();
      const { snapshots } = await c.call('snapshots.list', {});
      const entries: SnapshotEntry[] = [];
      for (const summary of snapshots) {
        const devs = await Promise.all(
          summary.devices.map(async (device) => toSnapshotDevice(device, await c.call('snapshotInfo', { device }).catch(() => null))),
        );
        const storage = await c.call('storageInfo', { id: summary.id }).then(toStorageGauge, () => null);
        entries.push(toSnapshotEntry(summary, devs, storage));
      }
      return entries;
    },
    cbtInfo: async ({ device }) => toCbtInfoEntry(device, await (await client()).call('cbtInfo', { device })),
    cbtMap: async ({ device, table = 'snapshot' }): Promise<CbtMapEntry> => {
      const c = await client();
      if (table === 'active' && !link.hello?.capabilities.includes(CBT_ACTIVE_TABLE)) {
        throw new BridgeError('EOPNOTSUPP', 'The live change map needs the embedded engine; the kernel module only gives the map of the last snapshot.');
      }
      const info = toCbtInfoEntry(device, await c.call('cbtInfo', { device }));
      const map = new Uint8Array(info.blockCount);
      let offset = 0;
      while (offset < info.blockCount) {
        const length = Math.min(MAX_CBT_MAP_LENGTH, info.blockCount - offset);
        const part = await c.call('cbtMap', table === 'active' ? { device, offset, length, table } : { device, offset, length });
        const bytes = decodeCbtMap(part.data, part.length);
        map.set(bytes.subarray(0, Math.min(bytes.length, info.blockCount - offset)), offset);
        if (part.length === 0) break;
        offset += part.length;
      }
      return {
        ...info,
        table,
        activeNumber: activeChangeNumber(info.changesNumber),
        encoding: 'base64',
        data: Buffer.from(map).toString('base64'),
      };
    },
    workloadStart: async ({ device, rateMiBps, pattern }) => {
      await (await client()).call('workload.start', { device, rateMiBps, pattern });
      return null;
    },
    workloadStop: async ({ device }) => {
      await (await client()).call('workload.stop', { device });
      return null;
    },
    backupPlan: async (params) => toBackupPlan(await (await client()).call('backup.plan', params)),
    backupStart: async (params) => ({ jobId: (await (await client()).call('backup.start', params)).jobId }),
    backupVerify: async (params) => ({ jobId: (await (await client()).call('backup.verify', params)).jobId }),
    backupRestore: async (params) => ({ jobId: (await (await client()).call('backup.restore', params)).jobId }),
    backupCatalog: async (params) => toCatalog(await (await client()).call('backup.catalog', params)),
    backupExport: async (params) => toBackupExport(await (await client()).call('backup.export', params)),
    backupUnexport: async (params) => {
      await (await client()).call('backup.unexport', params);
      return null;
    },
    jobsList: async () => (await (await client()).call('jobs.list', {})).jobs.map(toJobEntry),
    jobsCancel: async (params) => {
      await (await client()).call('jobs.cancel', params);
      return null;
    },
    jobsWait: async ({ jobId, timeoutMs }) => {
      // The helper answers within timeoutMs; the call itself may take that long.
      const { job } = await (await client()).call('jobs.wait', { jobId, timeoutMs }, { timeoutMs: timeoutMs + 30_000 });
      return toJobEntry(job);
    },
  };

  const api = {
    onSnapshotEvent: (cb: (e: SnapshotEventEntry) => void) => snapshotEvents.on(cb),
    onHelperState: (cb: (s: HelperState) => void) => helperState.on(cb),
    onWorkloadProgress: (cb: (p: WorkloadProgress) => void) => workloadProgress.on(cb),
    onJob: (cb: (j: JobEntry) => void) => jobs.on(cb),
  } as Record<string, unknown>;
  for (const name of Object.keys(impl) as RequestName[]) {
    const fn = impl[name] as (params: unknown) => Promise<unknown>;
    api[name] = (params?: unknown) => wrap(() => fn(params));
  }

  return {
    api: api as unknown as BlksnapApi,
    link,
    start: async () => {
      await link.connect().catch(() => undefined);
    },
    close: () => link.close(),
  };
}
