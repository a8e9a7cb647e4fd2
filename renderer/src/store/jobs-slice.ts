/** Helper jobs (backup, verify, restore): kept up to date by onJob, shown by the job bar. */
import type { BlksnapApi } from '../../../app/shared/contract.js';
import type { JobEntry } from '../../../app/shared/types.js';
import type { ActionError, GetState, SetState } from './types.js';

/** At most this many jobs are kept (the helper keeps 32 as well). */
export const MAX_JOBS = 32;

export interface JobsSlice {
  /** Jobs by start order (oldest first). */
  jobs: JobEntry[];
  /** Finished jobs the user closed in the job bar. */
  dismissedJobs: string[];
  /** A job's progress or end (onJob, jobsList, jobsWait). A running update never replaces an ended state. */
  applyJob(job: JobEntry): void;
  refreshJobs(): Promise<void>;
  cancelJob(jobId: string): Promise<ActionError>;
  dismissJob(jobId: string): void;
}

function ended(job: JobEntry): boolean {
  return job.state !== 'running';
}

export function createJobsSlice(api: BlksnapApi, set: SetState, get: GetState): JobsSlice {
  return {
    jobs: [],
    dismissedJobs: [],
    applyJob(job) {
      set((s) => {
        const index = s.jobs.findIndex((j) => j.jobId === job.jobId);
        if (index < 0) return { jobs: [...s.jobs, job].slice(-MAX_JOBS) };
        const previous = s.jobs[index] as JobEntry;
        // A late progress message must not revive a job that has ended.
        if (ended(previous) && !ended(job)) return {};
        const merged: JobEntry = { ...job, result: job.result ?? previous.result };
        const jobs = [...s.jobs];
        jobs[index] = merged;
        return { jobs };
      });
    },
    async refreshJobs() {
      const r = await api.jobsList();
      if (!r.ok) return;
      for (const job of r.value) get().applyJob(job);
    },
    async cancelJob(jobId) {
      const r = await api.jobsCancel({ jobId });
      if (!r.ok) {
        set({ notice: { kind: 'error', text: `Cancel failed: ${r.error.code}: ${r.error.message}` } });
        return r.error;
      }
      set({ notice: { kind: 'info', text: 'Cancelling the job…' } });
      return null;
    },
    dismissJob: (jobId) => set((s) => ({ dismissedJobs: [...s.dismissedJobs, jobId] })),
  };
}
