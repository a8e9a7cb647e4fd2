/** Helper protocol data -> contract data (pure). Sizes stay in bytes; sectors are 512 bytes. */
import type { DeviceEntry as HelperDevice, ImageEntry, ModuleHealthWire, SnapshotSummary, WorkloadProgress as HelperWorkloadProgress } from '../../engine/protocol/schemas.js';
import type { MethodResult } from '../../engine/protocol/methods.js';
import type { CbtInfoEntry, DeviceEntry, KernelModuleHealth, SnapshotDeviceEntry, SnapshotEntry, StorageGauge, VersionInfo, WorkloadProgress } from '../shared/types.js';
import { errnoNameOf } from './errno-names.js';

export const SECTOR_SIZE = 512;

export function toDeviceEntry(d: HelperDevice): DeviceEntry {
  return {
    id: d.ref,
    name: d.name,
    path: d.path,
    kind: d.kind === 'image' ? 'engine' : 'block',
    sizeBytes: d.capacity,
    model: d.model ?? '',
    fstype: d.fsType ?? '',
    mountpoints: d.mountpoints ?? [],
    tracked: d.attached ?? false,
    snapshotId: d.snapshotId,
    nbdUri: d.nbdUri,
    blockedBy: d.blockedBy ?? [],
    labDisk: d.labDisk ?? false,
    type: d.kind === 'image' ? 'engine' : (d.type ?? 'disk'),
    label: d.label ?? '',
    parents: d.parents ?? [],
    partitions: (d.partitions ?? []).map((p) => ({ number: p.number, startBytes: p.start, sizeBytes: p.size, name: p.name })),
    bypass: d.bypass ?? [],
  };
}

/** An image the helper just opened (a lab disk it created, or an existing image), as a device (before it shows up in devices.list). */
export function imageToDeviceEntry(image: ImageEntry, labDisk: boolean): DeviceEntry {
  return {
    id: image.name,
    name: image.name,
    path: image.path,
    kind: 'engine',
    sizeBytes: image.capacity,
    model: '',
    fstype: '',
    mountpoints: [],
    tracked: false,
    snapshotId: null,
    nbdUri: image.nbdUri,
    blockedBy: [],
    labDisk,
    type: 'engine',
    label: '',
    parents: [],
    partitions: [],
    bypass: [],
  };
}

export function toCbtInfoEntry(device: string, info: MethodResult<'cbtInfo'>): CbtInfoEntry {
  return {
    device,
    capacityBytes: info.deviceCapacity,
    blockSize: info.blockSize,
    blockCount: info.blockCount,
    generationId: info.generationId,
    changesNumber: info.changesNumber,
  };
}

/** The helper's kernelModule for the UI (the control device path stays in the helper). */
export function toKernelModuleHealth(m: ModuleHealthWire): KernelModuleHealth {
  return {
    loaded: m.loaded,
    dialect: m.dialect,
    moduleVersion: m.moduleVersion,
    filter: m.filter,
    bdevfilter: m.bdevfilter,
    summary: m.summary,
    advice: m.advice,
  };
}

/** "1.2.3.4" -> VersionInfo (missing parts are 0); null when not a version. */
export function parseVersion(text: string): VersionInfo | null {
  const parts = text.trim().split('.');
  if (parts.length === 0 || parts.length > 4 || !parts.every((p) => /^\d+$/.test(p))) return null;
  const [major = 0, minor = 0, revision = 0, build = 0] = parts.map(Number);
  return { major, minor, revision, build };
}

export function toStorageGauge(info: MethodResult<'storageInfo'>): StorageGauge {
  return {
    path: info.path,
    limitBytes: info.limitSectors * SECTOR_SIZE,
    allocatedBytes: info.allocatedSectors * SECTOR_SIZE,
    usedBytes: info.usedSectors === null ? null : info.usedSectors * SECTOR_SIZE,
  };
}

export function toSnapshotDevice(device: string, info: MethodResult<'snapshotInfo'> | null): SnapshotDeviceEntry {
  const errorCode = info?.errorCode ?? 0;
  return {
    device,
    errorCode,
    errorName: errnoNameOf(errorCode),
    image: info?.image ?? '',
    imageNbdUri: info?.nbdUri ?? null,
  };
}

export function toSnapshotEntry(summary: SnapshotSummary, devices: SnapshotDeviceEntry[], storage: StorageGauge | null): SnapshotEntry {
  const failed = devices.some((d) => d.errorCode !== 0);
  return {
    id: summary.id,
    state: failed ? 'failed' : summary.taken ? 'taken' : 'created',
    writableImages: summary.writableImages,
    devices,
    storage,
    ...(summary.name !== undefined ? { name: summary.name } : {}),
    ...(summary.createdMs !== undefined ? { createdMs: summary.createdMs } : {}),
    ...(summary.takenMs !== undefined ? { takenMs: summary.takenMs } : {}),
  };
}

export function toWorkloadProgress(p: HelperWorkloadProgress): WorkloadProgress {
  const out: WorkloadProgress = {
    device: p.device,
    running: p.running,
    pattern: p.pattern,
    rateMiBps: p.rateMiBps,
    actualMiBps: p.actualMiBps,
    bytesWritten: p.bytesWritten,
    writes: p.writes,
    elapsedMs: p.elapsedMs,
  };
  if (p.error !== undefined) out.error = p.error;
  return out;
}
