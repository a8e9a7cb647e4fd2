/**
 * Long work of the helper (backups, verifies, restores) as jobs: each runs in the
 * helper process with an AbortSignal, reports progress (bytes done/total, throughput,
 * ETA) at most every 250 ms and once when it ends, and is remembered afterwards
 * (the running ones and the last finished ones, 32 in all). At most one job at a
 * time holds a given key (a backup set folder).
 */
import { randomUUID } from 'node:crypto';
import { BlksnapError, isErrnoName } from '../abi/errno.js';
import type { JobKind, JobResult, JobState } from '../protocol/backup-schemas.js';

export const JOB_HISTORY = 32;
export const JOB_REPORT_MS = 250;

export interface JobContext {
  readonly signal: AbortSignal;
  /** Bytes done of total; throttled before it reaches subscribers. */
  progress(done: number, total: number): void;
  warn(message: string): void;
}

export interface JobSpec {
  kind: JobKind;
  title: string;
  /** Jobs with the same key run one at a time (EBUSY for a second one). */
  key: string;
  warnings?: string[];
  run(ctx: JobContext): Promise<JobResult>;
}

interface Job {
  state: JobState;
  key: string;
  abort: AbortController;
  ended: Promise<void>;
  lastReport: number;
  timer: NodeJS.Timeout | null;
  /** Throughput: (time, done) a few seconds back. */
  samples: [number, number][];
}

export class JobRunner {
  private readonly jobs = new Map<string, Job>();
  private readonly busy = new Map<string, string>();

  constructor(
    private readonly report: (state: JobState) => void,
    private readonly log: (message: string) => void = () => {},
    private readonly clock: () => number = Date.now,
  ) {}

  start(spec: JobSpec): JobState {
    const holder = this.busy.get(spec.key);
    if (holder) throw new BlksnapError('EBUSY', `job ${holder} is already working on ${spec.key}; wait for it or cancel it (jobs.cancel)`);
    const jobId = randomUUID();
    const now = this.clock();
    const job: Job = {
      key: spec.key,
      abort: new AbortController(),
      ended: Promise.resolve(),
      lastReport: 0,
      timer: null,
      samples: [[now, 0]],
      state: {
        jobId,
        kind: spec.kind,
        state: 'running',
        title: spec.title,
        done: 0,
        total: 0,
        bytesPerSecond: null,
        etaSeconds: null,
        startedAt: new Date(now).toISOString(),
        endedAt: null,
        error: null,
        warnings: [...(spec.warnings ?? [])],
        result: null,
      },
    };
    this.busy.set(spec.key, jobId);
    this.jobs.set(jobId, job);
    this.trim();
    const ctx: JobContext = {
      signal: job.abort.signal,
      progress: (done, total) => this.progress(job, done, total),
      warn: (message) => {
        job.state.warnings.push(message);
        this.emit(job);
      },
    };
    this.emit(job);
    job.ended = (async () => {
      try {
        const result = await spec.run(ctx);
        job.state.result = result;
        job.state.state = 'done';
        if (job.state.total > 0) job.state.done = job.state.total;
      } catch (err) {
        const cancelled = job.abort.signal.aborted;
        job.state.state = cancelled ? 'cancelled' : 'failed';
        const code = err instanceof BlksnapError ? err.errno : isErrnoName((err as { code?: string }).code) ? String((err as { code?: string }).code) : 'EIO';
        let message = err instanceof Error ? err.message : String(err);
        if (err instanceof BlksnapError && message.startsWith(`${err.errno}: `)) message = message.slice(err.errno.length + 2);
        job.state.error = { code: cancelled ? 'ECANCELED' : code, message };
        this.log(`job ${jobId} (${spec.title}) ${job.state.state}: ${job.state.error.message}`);
      } finally {
        if (job.timer) clearTimeout(job.timer);
        job.timer = null;
        job.state.endedAt = new Date(this.clock()).toISOString();
        job.state.etaSeconds = job.state.state === 'done' ? 0 : null;
        this.busy.delete(spec.key);
        this.report(structuredClone(job.state));
        this.trim();
      }
    })();
    return structuredClone(job.state);
  }

  private progress(job: Job, done: number, total: number): void {
    if (job.state.state !== 'running') return;
    const now = this.clock();
    job.state.done = done;
    job.state.total = total;
    job.samples.push([now, done]);
    while (job.samples.length > 2 && now - job.samples[0]![0] > 5000) job.samples.shift();
    const [t0, d0] = job.samples[0]!;
    if (now - t0 >= 200 && done >= d0) {
      const rate = ((done - d0) * 1000) / (now - t0);
      job.state.bytesPerSecond = Math.round(rate);
      job.state.etaSeconds = rate > 0 ? Math.ceil((total - done) / rate) : null;
    }
    this.emit(job);
  }

  /** Reports now, or schedules the report so there is at most one per JOB_REPORT_MS. */
  private emit(job: Job): void {
    const now = this.clock();
    const due = job.lastReport + JOB_REPORT_MS;
    if (now >= due) {
      job.lastReport = now;
      this.report(structuredClone(job.state));
    } else {
      job.timer ??= setTimeout(() => {
        job.timer = null;
        if (job.state.state !== 'running') return;
        job.lastReport = this.clock();
        this.report(structuredClone(job.state));
      }, due - now);
    }
  }

  /** Keeps every running job and the newest finished ones, JOB_HISTORY in all. */
  private trim(): void {
    let excess = this.jobs.size - JOB_HISTORY;
    for (const [id, job] of this.jobs) {
      if (excess <= 0) break;
      if (job.state.state === 'running') continue;
      this.jobs.delete(id);
      excess--;
    }
  }

  list(): JobState[] {
    return [...this.jobs.values()].map((j) => structuredClone(j.state));
  }

  private need(jobId: string): Job {
    const job = this.jobs.get(jobId);
    if (!job) throw new BlksnapError('ESRCH', `no job ${jobId} (jobs.list shows the running and the last ${JOB_HISTORY} jobs)`);
    return job;
  }

  cancel(jobId: string): void {
    const job = this.need(jobId);
    if (job.state.state === 'running') job.abort.abort();
  }

  async wait(jobId: string, timeoutMs: number, signal?: AbortSignal): Promise<JobState> {
    const job = this.need(jobId);
    if (job.state.state === 'running') {
      let timer: NodeJS.Timeout | undefined;
      let onAbort: (() => void) | undefined;
      await Promise.race([
        job.ended,
        new Promise<void>((res) => {
          timer = setTimeout(res, timeoutMs);
          onAbort = res;
          signal?.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
    return structuredClone(job.state);
  }

  /** Cancels every running job and waits for them to end (shutdown). */
  async cancelAll(): Promise<void> {
    const running = [...this.jobs.values()].filter((j) => j.state.state === 'running');
    for (const j of running) j.abort.abort();
    await Promise.all(running.map((j) => j.ended));
  }
}
