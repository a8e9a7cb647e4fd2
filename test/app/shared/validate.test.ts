import { describe, expect, it } from 'vitest';
import { validateParams } from '../../../app/shared/validate.js';

describe('validateParams', () => {
  it('accepts undefined or null for requests without params, and rejects an object', () => {
    expect(validateParams('listDevices', undefined)).toEqual({ ok: true, value: undefined });
    expect(validateParams('getStatus', null)).toEqual({ ok: true, value: undefined });
    expect(validateParams('getStatus', { x: 1 }).ok).toBe(false);
  });

  it('accepts cbtMap with an optional table choice, and rejects another table', () => {
    expect(validateParams('cbtMap', { device: 'disk1' })).toEqual({ ok: true, value: { device: 'disk1' } });
    expect(validateParams('cbtMap', { device: 'disk1', table: 'active' })).toEqual({ ok: true, value: { device: 'disk1', table: 'active' } });
    expect(validateParams('cbtMap', { device: 'disk1', table: 'snapshot' }).ok).toBe(true);
    expect(validateParams('cbtMap', { device: 'disk1', table: 'write' }).ok).toBe(false);
  });

  it('accepts a valid snapshotCreate and rejects empty devices / negative limit / extra keys', () => {
    const good = { devices: ['disk1'], storagePath: '/var/tmp/diff1', limitBytes: 1 << 30 };
    expect(validateParams('snapshotCreate', good)).toEqual({ ok: true, value: good });
    const bad = [
      { ...good, devices: [] },
      { ...good, limitBytes: -1 },
      { ...good, limitBytes: 1.5 },
      { ...good, extra: true },
      { devices: ['disk1'], limitBytes: 10 },
    ];
    for (const params of bad) {
      const r = validateParams('snapshotCreate', params);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe('EINVAL');
        expect(r.error.detail).toBeTruthy();
      }
    }
  });

  it('snapshotCreate takes writableImages as a boolean and refuses control characters in devices and paths', () => {
    const good = { devices: ['disk1'], storagePath: '/var/tmp/diff1', limitBytes: 1 << 30, writableImages: true };
    expect(validateParams('snapshotCreate', good)).toEqual({ ok: true, value: good });
    expect(validateParams('snapshotCreate', { ...good, writableImages: 'yes' }).ok).toBe(false);
    for (const params of [{ ...good, storagePath: '/var/tmp/a\nb' }, { ...good, devices: ['\x1b[31m'] }]) {
      const r = validateParams('snapshotCreate', params);
      expect(r.ok ? 'accepted' : `${r.error.code} ${r.error.detail ?? ''}`).toMatch(/^EINVAL .*contains the control character \\(n|x1b) at position/);
    }
    expect(validateParams('addImage', { path: '/tmp/x\u009b.img' }).ok).toBe(false);
  });

  it('createLabDisk needs a name or a path and a size that is a multiple of 512', () => {
    expect(validateParams('createLabDisk', { name: 'disk1', sizeBytes: 64 << 20 }).ok).toBe(true);
    expect(validateParams('createLabDisk', { path: '/tmp/a.img', sizeBytes: 512 }).ok).toBe(true);
    expect(validateParams('createLabDisk', { sizeBytes: 512 }).ok).toBe(false);
    expect(validateParams('createLabDisk', { name: 'disk1', sizeBytes: 1000 }).ok).toBe(false);
    expect(validateParams('createLabDisk', { name: '../evil', sizeBytes: 512 }).ok).toBe(false);
  });

  it('workloadStart checks the pattern and the rate', () => {
    expect(validateParams('workloadStart', { device: 'd', rateMiBps: 5, pattern: 'hotspot' }).ok).toBe(true);
    expect(validateParams('workloadStart', { device: 'd', rateMiBps: 5, pattern: 'zigzag' }).ok).toBe(false);
    expect(validateParams('workloadStart', { device: 'd', rateMiBps: 0, pattern: 'random' }).ok).toBe(false);
  });

  it('backup requests need absolute folders and targets, a known kind, and no extra keys', () => {
    const start = { snapshotId: 's1', dir: '/srv/backup', kind: 'incremental', allowFull: true };
    expect(validateParams('backupStart', start)).toEqual({ ok: true, value: start });
    expect(validateParams('backupStart', { ...start, kind: 'partial' }).ok).toBe(false);
    expect(validateParams('backupStart', { ...start, dir: 'backup' }).ok).toBe(false);
    expect(validateParams('backupStart', { ...start, compress: 'zstd' }).ok).toBe(true);
    expect(validateParams('backupStart', { ...start, compress: 'lz4' }).ok).toBe(false);
    expect(validateParams('backupRestore', { dir: '/srv/backup/disk1', point: 'p1', target: '/var/tmp/r.img' }).ok).toBe(true);
    expect(validateParams('backupRestore', { dir: '/srv/backup/disk1', point: 'p1', target: 'r.img' }).ok).toBe(false);
    expect(validateParams('backupRestore', { dir: '/srv/backup/disk1', point: 'p1', target: '/r.img', createSize: 1 }).ok).toBe(false);
    expect(validateParams('jobsWait', { jobId: 'j1', timeoutMs: -1 }).ok).toBe(false);
    expect(validateParams('jobsList', undefined).ok).toBe(true);
  });
});
