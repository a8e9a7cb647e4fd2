import { describe, expect, it } from 'vitest';
import { formatDuration, outcomeText, progressText, rateText } from '../../../../renderer/src/features/backup/job-text.js';
import { GiB, MiB, job } from '../../fixtures.js';

describe('job progress in words', () => {
  it('says bytes done of total with the percentage, the throughput and the time left', () => {
    const j = job('j1', { done: 256 * MiB, total: GiB, bytesPerSecond: 64 * MiB, etaSeconds: 12 });
    expect(progressText(j)).toBe('256 MiB of 1 GiB (25%)');
    expect(rateText(j)).toBe('64 MiB/s, about 12 s left');
    expect(rateText(job('j2'))).toBe('');
  });

  it('formats durations in s, min and h', () => {
    expect(formatDuration(5)).toBe('5 s');
    expect(formatDuration(65)).toBe('1 min 5 s');
    expect(formatDuration(3720)).toBe('1 h 2 min');
  });

  it('names a failed verification point and a restore whose digest does not match', () => {
    const verify = job('v', {
      kind: 'verify',
      state: 'done',
      result: { kind: 'verify', ok: false, points: [{ pointId: 'p2', ok: false, problem: 'block 7 differs from the manifest' }] },
    });
    expect(outcomeText(verify)).toBe('Verification failed: p2: block 7 differs from the manifest');
    const restore = job('r', { kind: 'restore', state: 'done', result: { kind: 'restore', target: '/t.img', bytes: GiB, sha256: 'ab', matchesManifest: false } });
    expect(outcomeText(restore)).toBe('Restored 1 GiB to /t.img; SHA-256 DOES NOT match the backup.');
    expect(outcomeText(job('f', { state: 'failed', error: { code: 'ENOSPC', message: 'the backup folder is full' } }))).toBe('Failed: the backup folder is full');
  });
});
