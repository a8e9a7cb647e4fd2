import { useApp } from '../../store/context.js';
import type { JobEntry } from '../../../../app/shared/types.js';
import { outcomeText, progressText, rateText } from './job-text.js';

function JobRow({ job }: { job: JobEntry }) {
  const cancelJob = useApp((s) => s.cancelJob);
  const dismissJob = useApp((s) => s.dismissJob);
  const outcome = outcomeText(job);
  const running = job.state === 'running';
  return (
    <li className={`job job-${job.state}`} data-testid="job" data-job-id={job.jobId} data-state={job.state}>
      <span className="job-title">{job.title}</span>
      <progress
        max={job.total > 0 ? job.total : 1}
        value={job.total > 0 ? Math.min(job.done, job.total) : running ? undefined : 1}
        aria-label={`Progress of ${job.title}`}
      />
      <span className="job-numbers" data-testid="job-progress">
        {progressText(job)}
      </span>
      {running ? (
        <span className="job-rate muted" data-testid="job-rate">
          {rateText(job)}
        </span>
      ) : (
        <span className={job.state === 'done' ? 'job-outcome' : 'job-outcome error-text'} data-testid="job-outcome">
          {outcome}
        </span>
      )}
      {job.warnings.map((w) => (
        <span key={w} className="warning small-text" data-testid="job-warning">
          {w}
        </span>
      ))}
      {running ? (
        <button type="button" className="small" data-testid="job-cancel" aria-label={`Cancel ${job.title}`} onClick={() => void cancelJob(job.jobId)}>
          Cancel
        </button>
      ) : (
        <button type="button" className="small" data-testid="job-dismiss" aria-label={`Close ${job.title}`} onClick={() => dismissJob(job.jobId)}>
          Close
        </button>
      )}
    </li>
  );
}

/**
 * Running jobs, and the last finished one until closed (older outcomes stay in the
 * wizard and the catalog), visible on every screen.
 */
export function visibleJobs(jobs: JobEntry[], dismissed: string[]): JobEntry[] {
  const lastEnded = jobs.filter((j) => j.state !== 'running').at(-1);
  return jobs.filter((j) => j.state === 'running' || (j === lastEnded && !dismissed.includes(j.jobId)));
}

export function JobBar() {
  const jobs = useApp((s) => s.jobs);
  const dismissed = useApp((s) => s.dismissedJobs);
  const shown = visibleJobs(jobs, dismissed);
  if (shown.length === 0) return null;
  return (
    <section className="job-bar" aria-label="Jobs" data-testid="job-bar">
      <ul>
        {shown.map((job) => (
          <JobRow key={job.jobId} job={job} />
        ))}
      </ul>
    </section>
  );
}
