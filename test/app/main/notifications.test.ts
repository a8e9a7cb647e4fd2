import { describe, expect, it, vi } from 'vitest';
import { LONG_JOB_MS, helperStateNotification, jobNotification, longJobNotification, snapshotEventNotification, workloadNotification } from '../../../app/main/notifications.js';
import type { JobEntry } from '../../../app/shared/types.js';
import { err, ok } from '../../../app/shared/result.js';

vi.mock('electron', () => ({}));

const ID = '0f1e2d3c-4b5a-4697-8877-665544332211';

describe('notifications', () => {
  it('tells about a corrupted snapshot and full storage, not about low free space', () => {
    const corrupted = snapshotEventNotification({ code: 'corrupted', snapshotId: ID, timeMs: 1, device: 'disk1', devMajor: 259, devMinor: 0, errCode: -28 });
    expect(corrupted).toMatchObject({ title: 'Snapshot corrupted', urgency: 'critical' });
    expect(corrupted?.body).toContain('disk1');
    expect(corrupted?.body).toContain('ENOSPC');
    expect(snapshotEventNotification({ code: 'no_space', snapshotId: ID, timeMs: 1, requestedSectors: 8 })?.title).toBe('Difference storage is full');
    expect(snapshotEventNotification({ code: 'low_free_space', snapshotId: ID, timeMs: 1, requestedSectors: 8 })).toBeNull();
  });

  it('shows control characters of device names and messages escaped', () => {
    const corrupted = snapshotEventNotification({ code: 'corrupted', snapshotId: ID, timeMs: 1, device: '/dev/sd\x1b[2Jx', devMajor: 8, devMinor: 0, errCode: -5 });
    expect(corrupted?.body).toContain('The snapshot image of /dev/sd\\x1b[2Jx (snapshot');
    expect(corrupted?.body).not.toContain('\x1b');
    const base = { device: 'a\nb', pattern: 'random' as const, rateMiBps: 1, actualMiBps: 1, bytesWritten: 1, writes: 1, elapsedMs: 1 };
    expect(workloadNotification({ ...base, running: false, error: 'EIO: \u009b' })?.body).toBe('The workload on a\\nb stopped: EIO: \\u009b');
  });

  it('tells about a workload that stopped on an error only', () => {
    const base = { device: 'd', pattern: 'random' as const, rateMiBps: 1, actualMiBps: 1, bytesWritten: 1, writes: 1, elapsedMs: 1 };
    expect(workloadNotification({ ...base, running: true })).toBeNull();
    expect(workloadNotification({ ...base, running: false })).toBeNull();
    expect(workloadNotification({ ...base, running: false, error: 'ENOSPC: full' })?.body).toContain('ENOSPC');
  });

  it('tells about backup jobs when they end, critically when a verify or restore does not match', () => {
    const base: JobEntry = {
      jobId: 'j', kind: 'verify', state: 'running', title: 'Verify disk1', done: 0, total: 1, bytesPerSecond: null,
      etaSeconds: null, startedAt: '', endedAt: null, error: null, warnings: [], result: null,
    };
    expect(jobNotification(base)).toBeNull();
    expect(jobNotification({ ...base, state: 'done', result: { kind: 'verify', ok: true, points: [] } })).toMatchObject({ title: 'Job done', urgency: 'normal' });
    expect(jobNotification({ ...base, state: 'done', result: { kind: 'verify', ok: false, points: [] } })).toMatchObject({ title: 'Verification failed', urgency: 'critical' });
    expect(jobNotification({ ...base, state: 'failed', error: { code: 'EIO', message: 'read error at 4096' } })?.body).toBe('Verify disk1: read error at 4096');
  });

  it('tells about long jobs when they end, successful or not', () => {
    expect(longJobNotification('snapshotTake', ok(null), LONG_JOB_MS - 1)).toBeNull();
    expect(longJobNotification('listDevices', ok([]), LONG_JOB_MS * 3)).toBeNull();
    expect(longJobNotification('createLabDisk', ok(null), 12_000)?.body).toBe('Creating the lab disk finished after 12 s.');
    expect(longJobNotification('snapshotCreate', err('ENOSPC', 'No space.'), 15_000)?.body).toContain('failed after 15 s: No space.');
  });

  it('tells when the helper is lost, not when it starts or stops on request', () => {
    expect(helperStateNotification({ state: 'lost', message: 'The helper stopped: EPIPE.' })?.body).toContain('The helper stopped: EPIPE.');
    expect(helperStateNotification({ state: 'connected' })).toBeNull();
    expect(helperStateNotification({ state: 'starting' })).toBeNull();
    expect(helperStateNotification({ state: 'stopped', message: 'x' })).toBeNull();
  });
});
