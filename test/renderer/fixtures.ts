import type { DeviceEntry, FilesystemEntry, SnapshotEntry } from '../../app/shared/types.js';

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
    devices: devices.map((d) => ({ device: d, errorCode: 0, errorName: '', image: '', imageNbdUri: null })),
    storage: { path: `/var/tmp/blksnap-diff-${id}.img`, limitBytes: 100 * MiB, allocatedBytes: 10 * MiB, usedBytes: 4 * MiB },
    ...overrides,
  };
}
