import { describe, expect, it } from 'vitest';
import {
  filesystemFor,
  gaugeFill,
  storageFilePath,
  storageWarnings,
  suggestedLimitBytes,
} from '../../../../renderer/src/features/storage/storage-advice.js';
import { GiB, MiB, device, filesystem } from '../../fixtures.js';

describe('storage advice', () => {
  it('suggests 15% of the selected size, rounded up to a MiB, at least 64 MiB', () => {
    expect(suggestedLimitBytes([])).toBe(0);
    expect(suggestedLimitBytes([10 * GiB])).toBe(Math.ceil((10 * GiB * 0.15) / MiB) * MiB);
    expect(suggestedLimitBytes([100 * MiB])).toBe(64 * MiB);
    expect(suggestedLimitBytes([GiB, GiB]) % MiB).toBe(0);
  });

  it('finds the filesystem by the longest mount point prefix', () => {
    const fss = [filesystem('/'), filesystem('/var'), filesystem('/var/lib')];
    expect(filesystemFor('/var/lib/x', fss)?.mountpoint).toBe('/var/lib');
    expect(filesystemFor('/variable', fss)?.mountpoint).toBe('/');
    expect(filesystemFor('/var', fss)?.mountpoint).toBe('/var');
    expect(filesystemFor('/x', [filesystem('/var')])).toBeNull();
  });

  it('warns when the storage is on a device being snapshotted', () => {
    const fss = [filesystem('/', { source: '/dev/sda1' }), filesystem('/data', { source: '/dev/sdb1' })];
    const sdb = device('/dev/sdb1', { name: 'sdb1', path: '/dev/sdb1', kind: 'block', mountpoints: ['/data'] });
    const codes = storageWarnings('/data/diff', GiB, fss, [sdb]).map((w) => w.code);
    expect(codes).toContain('on-snapshotted-device');
    expect(storageWarnings('/var/tmp', GiB, fss, [sdb]).map((w) => w.code)).toEqual([]);
  });

  it('warns when the limit exceeds the free space, or leaves little of it', () => {
    const fss = [filesystem('/', { totalBytes: 100 * GiB, freeBytes: 12 * GiB })];
    expect(storageWarnings('/var/tmp', 20 * GiB, fss, []).map((w) => w.code)).toEqual(['limit-exceeds-free']);
    expect(storageWarnings('/var/tmp', 5 * GiB, fss, []).map((w) => w.code)).toEqual(['low-free-space']);
    expect(storageWarnings('/var/tmp', GiB, fss, [])).toEqual([]);
  });

  it('flags relative and unknown directories, says nothing for an empty one', () => {
    expect(storageWarnings('', GiB, [], [])).toEqual([]);
    expect(storageWarnings('tmp', GiB, [filesystem('/')], []).map((w) => w.code)).toEqual(['not-absolute']);
    expect(storageWarnings('/x', GiB, [filesystem('/var')], []).map((w) => w.code)).toEqual(['unknown-filesystem']);
  });

  it('gauge fill uses used bytes when known, else allocated', () => {
    expect(gaugeFill({ path: 'p', limitBytes: 100, allocatedBytes: 50, usedBytes: 10 })).toBe(0.1);
    expect(gaugeFill({ path: 'p', limitBytes: 100, allocatedBytes: 50, usedBytes: null })).toBe(0.5);
    expect(gaugeFill({ path: 'p', limitBytes: 0, allocatedBytes: 50, usedBytes: null })).toBe(0);
    expect(gaugeFill({ path: 'p', limitBytes: 10, allocatedBytes: 50, usedBytes: null })).toBe(1);
  });

  it('builds the storage file path in the directory', () => {
    expect(storageFilePath('/var/tmp', 42)).toBe('/var/tmp/blksnap-diff-42.img');
    expect(storageFilePath('/var/tmp/', 42)).toBe('/var/tmp/blksnap-diff-42.img');
    expect(storageFilePath('/', 1)).toBe('/blksnap-diff-1.img');
  });
});
