/**
 * Desktop notifications: a corrupted snapshot, full difference storage, a workload
 * that failed, the helper gone, and long requests that finished while the window was
 * not focused.
 */
import type { RequestName } from '../shared/contract.js';
import { escapeControlChars as shown } from '../shared/control-chars.js';
import type { Result } from '../shared/result.js';
import type { HelperState, JobEntry, SnapshotEventEntry, WorkloadProgress } from '../shared/types.js';
import { errnoNameOf } from '../bridge/errno-names.js';

export interface NotificationText {
  title: string;
  body: string;
  urgency: 'normal' | 'critical';
}

/** Requests lasting longer than this are "long jobs". */
export const LONG_JOB_MS = 10_000;

const LABELS: Partial<Record<RequestName, string>> = {
  createLabDisk: 'Creating the lab disk',
  addImage: 'Adding the image',
  snapshotCreate: 'Creating the snapshot',
  snapshotTake: 'Taking the snapshot',
  snapshotDestroy: 'Destroying the snapshot',
  cbtMap: 'Reading the change map',
};

export function snapshotEventNotification(event: SnapshotEventEntry): NotificationText | null {
  const short = event.snapshotId.slice(0, 8);
  switch (event.code) {
    case 'corrupted': {
      const name = errnoNameOf(event.errCode);
      return {
        title: 'Snapshot corrupted',
        body: `The snapshot image of ${shown(event.device)} (snapshot ${short}) is corrupted${name === '' ? '' : ` (${name})`}. Its backup cannot be trusted.`,
        urgency: 'critical',
      };
    }
    case 'no_space':
      return {
        title: 'Difference storage is full',
        body: `Snapshot ${short} ran out of difference storage. Destroy it and take a new one with a larger limit.`,
        urgency: 'critical',
      };
    default:
      return null;
  }
}

export function workloadNotification(progress: WorkloadProgress): NotificationText | null {
  if (progress.running || progress.error === undefined) return null;
  return { title: 'Write workload stopped', body: `The workload on ${shown(progress.device)} stopped: ${shown(progress.error)}`, urgency: 'normal' };
}

export function longJobNotification(method: RequestName, result: Result<unknown>, durationMs: number): NotificationText | null {
  if (durationMs < LONG_JOB_MS) return null;
  const label = LABELS[method];
  if (label === undefined) return null;
  const seconds = Math.round(durationMs / 1000);
  return result.ok
    ? { title: 'Finished', body: `${label} finished after ${seconds} s.`, urgency: 'normal' }
    : { title: 'Failed', body: `${label} failed after ${seconds} s: ${shown(result.error.message)}`, urgency: 'normal' };
}

/** The helper disappeared while connected (not: a start that failed, which the window shows). */
export function helperStateNotification(state: HelperState): NotificationText | null {
  if (state.state !== 'lost') return null;
  return {
    title: 'Helper stopped',
    body: `${shown(state.message ?? 'The helper stopped.')} Snapshots of the embedded engine are gone with it; use Reconnect to start it again.`,
    urgency: 'critical',
  };
}

/** A backup, verify or restore job that ended (shown when the window is not focused). A running job: null. */
export function jobNotification(job: JobEntry): NotificationText | null {
  switch (job.state) {
    case 'running':
      return null;
    case 'cancelled':
      return { title: 'Job cancelled', body: `${job.title}: cancelled.`, urgency: 'normal' };
    case 'failed':
      return { title: 'Job failed', body: `${job.title}: ${job.error?.message ?? 'failed'}`, urgency: 'critical' };
    case 'done': {
      const r = job.result;
      if (r?.kind === 'verify' && !r.ok) return { title: 'Verification failed', body: `${job.title}: a point does not match its manifest.`, urgency: 'critical' };
      if (r?.kind === 'restore' && !r.matchesManifest) return { title: 'Restore differs', body: `${job.title}: what was written does not match the backup.`, urgency: 'critical' };
      return { title: 'Job done', body: `${job.title}: done.`, urgency: 'normal' };
    }
  }
}
