/** Job progress in words (pure). */
import { formatBytes } from '../../../../app/shared/format.js';
import type { JobEntry } from '../../../../app/shared/types.js';

/** 65 -> "1 min 5 s"; 3720 -> "1 h 2 min"; 0..59 -> "N s". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** "1.5 GiB of 4 GiB (37%)". */
export function progressText(job: JobEntry): string {
  const percent = job.total > 0 ? Math.floor((job.done / job.total) * 100) : 0;
  return `${formatBytes(job.done)} of ${formatBytes(job.total)} (${percent}%)`;
}

/** "85 MiB/s, about 1 min 5 s left" — the parts the helper knows. */
export function rateText(job: JobEntry): string {
  const parts: string[] = [];
  if (job.bytesPerSecond !== null) parts.push(`${formatBytes(job.bytesPerSecond)}/s`);
  if (job.etaSeconds !== null) parts.push(`about ${formatDuration(job.etaSeconds)} left`);
  return parts.join(', ');
}

/** The end of a job in words, or null while it runs. */
export function outcomeText(job: JobEntry): string | null {
  switch (job.state) {
    case 'running':
      return null;
    case 'cancelled':
      return 'Cancelled.';
    case 'failed':
      return `Failed: ${job.error?.message ?? 'the job ended with an error.'}`;
    case 'done': {
      const r = job.result;
      if (r?.kind === 'verify') {
        if (r.ok) return 'Verified: every point matches its manifest.';
        const bad = r.points.filter((p) => !p.ok);
        return `Verification failed: ${bad.map((p) => `${p.pointId}: ${p.problem ?? 'does not match'}`).join('; ')}`;
      }
      if (r?.kind === 'restore') {
        return `Restored ${formatBytes(r.bytes)} to ${r.target}; SHA-256 ${r.matchesManifest ? 'matches' : 'DOES NOT match'} the backup.`;
      }
      if (r?.kind === 'backup') {
        return `Done: ${r.points.map((p) => `${p.device} ${p.pointKind} (${formatBytes(p.bytesWritten)} written)`).join(', ')}.`;
      }
      return 'Done.';
    }
  }
}
