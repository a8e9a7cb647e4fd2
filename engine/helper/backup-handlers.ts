/**
 * The protocol handlers of backup jobs (backup.*, jobs.*), over the job runner,
 * BackupJobs, BackupRestore and the browse registry. HelperService merges them into
 * its handler table.
 */
import { BlksnapError } from '../abi/errno.js';
import type { JobState } from '../protocol/backup-schemas.js';
import type { MethodName, MethodResult } from '../protocol/methods.js';
import type { HelperBackends } from './backends.js';
import { mountHint } from './backup-exports.js';
import { BackupJobs } from './backup-jobs.js';
import type { SourceOptions } from './backup-source.js';
import { BackupRestore } from './backup-restore.js';
import type { CallerFs } from './caller-fs.js';
import { JobRunner } from './jobs.js';
import type { ClientContext, HandlerParams } from './service.js';
import type { SnapshotBook } from './snapshot-book.js';
import type { StorageLedger } from './storage-ledger.js';

type BackupMethod = Extract<MethodName, `backup.${string}` | `jobs.${string}`>;
export type BackupHandlers = { [M in BackupMethod]: (params: HandlerParams<M>, ctx: ClientContext) => Promise<MethodResult<M>> };

export interface BackupHandlerDeps {
  backends: HelperBackends;
  book: SnapshotBook;
  files: CallerFs;
  resolveDevice(ref: string): Promise<string>;
  report(state: JobState): void;
  log(message: string): void;
  source?: SourceOptions;
  /** Records new restore targets before they are named (crash cleanup at the next start). */
  ledger?: StorageLedger | null;
}

export function backupHandlers(deps: BackupHandlerDeps): { handlers: BackupHandlers; jobs: JobRunner } {
  const jobs = new JobRunner(deps.report, deps.log);
  const backups = new BackupJobs({ ...deps, jobs });
  const restore = new BackupRestore({ ...deps, jobs });
  const OK = { ok: true as const };
  const handlers: BackupHandlers = {
    'backup.plan': (params) => backups.plan(params),
    'backup.start': async (params) => ({ jobId: (await backups.startBackup(params)).jobId }),
    'backup.verify': async ({ dir, point, compareWithSnapshot }) => {
      return { jobId: (await backups.startVerify({ dir, ...(point === undefined ? {} : { point }), ...(compareWithSnapshot === true ? { compareWithSnapshot } : {}) })).jobId };
    },
    'backup.restore': async (params) => ({ jobId: (await restore.start(params)).jobId }),
    'backup.catalog': ({ dir }) => backups.catalog(dir),
    'backup.export': async ({ dir, point }) => {
      const { backupExports } = deps.backends;
      // the engine's NBD server, or with the kernel driver the one that serves browsed points only
      const nbd = deps.backends.nbd ?? deps.backends.browseNbd ?? null;
      if (!nbd || !backupExports) throw new BlksnapError('EOPNOTSUPP', 'browsing a backup needs the helper\'s NBD server, which this helper has not started; restore the point to an image file and mount that read-only');
      const { name } = await backupExports.add(deps.files, dir, point);
      const uri = nbd.uriFor(name);
      return { name, uri, readOnly: true as const, mountHint: mountHint(uri, name) };
    },
    'backup.unexport': async ({ name }) => {
      const { backupExports } = deps.backends;
      if (!backupExports) throw new BlksnapError('ESRCH', `no backup export named ${name}`);
      await backupExports.remove(name);
      return OK;
    },
    'jobs.list': async () => ({ jobs: jobs.list() }),
    'jobs.cancel': async ({ jobId }) => {
      jobs.cancel(jobId);
      return OK;
    },
    'jobs.wait': async ({ jobId, timeoutMs }, ctx) => ({ job: await jobs.wait(jobId, timeoutMs, ctx.closeSignal) }),
  };
  return { handlers, jobs };
}
