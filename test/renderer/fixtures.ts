import type {
  BackupCatalog,
  BackupPlanEntry,
  CatalogPoint,
  DeviceEntry,
  FilesystemEntry,
  JobEntry,
  SnapshotEntry,
} from '../../app/shared/types.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export function device(id: string, overrides: Partial<DeviceEntry> = {}): DeviceEntry {
  return {
    id,
    name: id,
    path: `/var/lib/blksnap-lab/${id}.img`,
    kind: 'engine',
    sizeBytes: GiB,
    model: 'engine image',
    fstype: '',
    mountpoints: [],
    tracked: false,
    snapshotId: null,
    nbdUri: `nbd://127.0.0.1:10809/${id}`,
    blockedBy: [],
    labDisk: true,
    type: 'engine',
    label: '',
    parents: [],
    partitions: [],
    bypass: [],
    ...overrides,
  };
}

export function filesystem(mountpoint: string, overrides: Partial<FilesystemEntry> = {}): FilesystemEntry {
  return { mountpoint, source: '/dev/sda1', fstype: 'ext4', totalBytes: 100 * GiB, freeBytes: 50 * GiB, ...overrides };
}

export function snapshot(id: string, devices: string[], overrides: Partial<SnapshotEntry> = {}): SnapshotEntry {
  return {
    id,
    state: 'created',
    writableImages: false,
    devices: devices.map((d) => ({ device: d, errorCode: 0, errorName: '', image: '', imageNbdUri: null })),
    storage: { path: `/var/tmp/blksnap-diff-${id}.img`, limitBytes: 100 * MiB, allocatedBytes: 10 * MiB, usedBytes: 4 * MiB },
    ...overrides,
  };
}

/** A plan entry for a device with no backup yet in the folder (full only). */
export function planEntry(device: string, overrides: Partial<BackupPlanEntry> = {}): BackupPlanEntry {
  return {
    device,
    chainDir: `/srv/backup/${device}`,
    points: 0,
    lastPoint: null,
    allowed: ['full'],
    reason: null,
    changedBytes: null,
    ...overrides,
  };
}

export function job(jobId: string, overrides: Partial<JobEntry> = {}): JobEntry {
  return {
    jobId,
    kind: 'backup',
    state: 'running',
    title: `Backup ${jobId}`,
    done: 0,
    total: GiB,
    bytesPerSecond: null,
    etaSeconds: null,
    startedAt: '2026-12-02T06:00:00.000Z',
    endedAt: null,
    error: null,
    warnings: [],
    result: null,
    ...overrides,
  };
}

export function catalogPoint(id: string, overrides: Partial<CatalogPoint> = {}): CatalogPoint {
  return {
    id,
    kind: id.endsWith('full') ? 'full' : 'incremental',
    time: '2026-12-01T14:02:00.000Z',
    parent: null,
    fileSize: 300 * MiB,
    changedBytes: 12 * MiB,
    verify: 'never',
    verifiedAt: null,
    file: `${id}.qcow2`,
    ...overrides,
  };
}

export function catalog(points: CatalogPoint[], device = 'disk1'): BackupCatalog {
  return {
    dir: '/srv/backup',
    spaceUsed: 512 * MiB,
    chains: [{ chainDir: `/srv/backup/${device}`, device: { path: `/var/lib/blksnap-lab/${device}.img`, size: GiB, model: null, serial: null }, points }],
  };
}
