/**
 * Waiting for a helper job from the CLI: a progress bar on a terminal (stderr,
 * redrawn), JSON lines of JobState with --json; Ctrl+C cancels the job
 * (jobs.cancel) and the command exits 130.
 */
import { BlksnapError, isErrnoName } from '../abi/errno.js';
import type { JobState } from '../protocol/backup-schemas.js';
import type { HelperClient } from '../protocol/client.js';
import type { Io } from './command.js';
import { formatBytes } from './values.js';

/** Exit status of a command interrupted by Ctrl+C (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;

function clock(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${r}` : `${m}:${r}`;
}

/** One line of progress: bar, percent, bytes, rate, ETA. */
export function progressLine(s: JobState, width = 30): string {
  const frac = s.total > 0 ? Math.min(1, s.done / s.total) : 0;
  const filled = Math.round(frac * width);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
  const rate = s.bytesPerSecond !== null ? ` ${formatBytes(s.bytesPerSecond)}/s` : '';
  const eta = s.etaSeconds !== null && s.state === 'running' ? ` ETA ${clock(s.etaSeconds)}` : '';
  return `${bar} ${String(Math.floor(frac * 100)).padStart(3)}% ${formatBytes(s.done)}/${formatBytes(s.total)}${rate}${eta}`;
}

export interface WaitOutcome {
  job: JobState;
  /** Ctrl+C cancelled it. */
  interrupted: boolean;
}

/** Follows `jobId` until it ends; throws the job's error when it failed. */
export async function followJob(client: HelperClient, jobId: string, io: Io, json: boolean): Promise<WaitOutcome> {
  const tty = !json && io.isTty === true;
  let drawn = false;
  const show = (s: JobState): void => {
    if (json) io.stdout(`${JSON.stringify(s)}\n`);
    else if (tty) {
      io.stderr(`\r${progressLine(s)}\x1b[K`);
      drawn = true;
    }
  };
  await client.call('subscribe', { topics: ['job'] });
  const off = client.on('job', (s) => {
    if (s.jobId === jobId && s.state === 'running') show(s);
  });
  let interrupted = false;
  const onSigint = (): void => {
    interrupted = true;
    void client.call('jobs.cancel', { jobId }).catch(() => undefined);
  };
  process.on('SIGINT', onSigint);
  let job: JobState;
  try {
    for (;;) {
      job = (await client.call('jobs.wait', { jobId, timeoutMs: 60_000 }, { timeoutMs: 90_000 })).job;
      if (job.state !== 'running') break;
    }
  } finally {
    process.off('SIGINT', onSigint);
    off();
  }
  show(job);
  if (drawn) io.stderr('\n');
  for (const w of job.warnings) if (!json) io.stderr(`warning: ${w}\n`);
  if (job.state === 'cancelled') {
    if (!json) io.stderr(`cancelled: ${job.title}\n`);
    return { job, interrupted: true };
  }
  if (job.state === 'failed') {
    const code = job.error?.code;
    throw new BlksnapError(isErrnoName(code) ? code : 'EIO', job.error?.message ?? 'the job failed');
  }
  return { job, interrupted };
}
