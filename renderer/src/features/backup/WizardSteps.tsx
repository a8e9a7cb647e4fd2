/** The Backup wizard's steps; each ends with its own "Next" (BackupScreen moves between them). */
import { useEffect, useState } from 'react';
import type { FormEvent } from 'react';
import { formatBytes } from '../../../../app/shared/format.js';
import type { ContractError } from '../../../../app/shared/result.js';
import type { BackupCompression, BackupKind, JobEntry } from '../../../../app/shared/types.js';
import { ErrorText } from '../../components/ErrorText.js';
import { FieldError } from '../../components/FieldError.js';
import { checkDirectory, parseSize } from '../../components/field-checks.js';
import { ScreenLink } from '../../components/ScreenLink.js';
import { useApp, useAppStoreApi } from '../../store/context.js';
import { selectability } from '../devices/selectable.js';
import { storageWarnings } from '../storage/storage-advice.js';
import { outcomeText, progressText, rateText } from './job-text.js';
import { KIND_HINTS, KIND_LABELS, allowedKinds, blockedDevices, chainSentence, reasonText, shortTime } from './plan-text.js';
import { DEFAULT_CHUNK_BYTES } from '../storage/cow-estimate.js';
import { MIN_SUGGESTED_BYTES } from '../storage/storage-advice.js';
import { ActionButton } from '../../components/ActionButton.js';

const MiB = 1024 * 1024;

/** The compression select's value as the wizard keeps it (null: none). */
function compressionOf(value: string): BackupCompression | null {
  return value === 'zlib' || value === 'zstd' ? value : null;
}

export interface StepProps {
  next(): void;
}

export function DevicesStep({ next }: StepProps) {
  const devices = useApp((s) => s.devices);
  const driver = useApp((s) => s.status?.driver ?? null);
  const selected = useApp((s) => s.selectedDevices);
  const toggle = useApp((s) => s.toggleDevice);
  const [error, setError] = useState<string | null>(null);
  const usable = devices.filter((d) => selectability(d, driver).selectable);
  return (
    <>
      <fieldset className="kind-choice" aria-describedby={error ? 'wizard-devices-error' : undefined}>
        <legend>Devices to back up</legend>
        {usable.length === 0 ? (
          <p className="muted">
            No device to back up. <ScreenLink screen="devices">Open the device list</ScreenLink>
          </p>
        ) : null}
        {usable.map((d) => (
          <label key={d.id}>
            <input type="checkbox" data-testid={`wizard-device-${d.id}`} checked={selected.includes(d.id)} onChange={() => toggle(d.id)} />
            {d.name} <span className="muted small-text">({formatBytes(d.sizeBytes)}, {d.path})</span>
          </label>
        ))}
      </fieldset>
      <FieldError id="wizard-devices-error" text={error} />
      <button
        type="button"
        data-testid="wizard-next"
        onClick={() => {
          if (selected.length === 0) setError('Choose at least one device.');
          else next();
        }}
      >
        Next: difference storage
      </button>
    </>
  );
}

export function StorageStep({ next }: StepProps) {
  const selected = useApp((s) => s.selectedDevices);
  const devices = useApp((s) => s.devices);
  const filesystems = useApp((s) => s.filesystems);
  const dir = useApp((s) => s.storageDir);
  const setDir = useApp((s) => s.setStorageDir);
  const allocate = useApp((s) => s.allocate);
  const load = useApp((s) => s.loadStorageEstimate);
  const estimate = useApp((s) => s.storageEstimate);
  const estimateError = useApp((s) => s.storageEstimateError);
  const [limitText, setLimitText] = useState<string | null>(null);
  const [dirError, setDirError] = useState<string | null>(null);
  const [limitError, setLimitError] = useState<string | null>(null);

  useEffect(() => {
    void load();
  }, [load, selected]);

  const suggestedMiB = estimate === null ? '' : String(estimate.estimate.limitBytes / MiB);
  const shown = limitText ?? suggestedMiB;
  const limit = parseSize(shown, 'the limit', 'MiB', MiB);
  const chosen = devices.filter((d) => selected.includes(d.id));
  const warnings = 'value' in limit ? storageWarnings(dir, limit.value, filesystems, chosen) : [];

  function submit(e: FormEvent) {
    e.preventDefault();
    const checkedDir = checkDirectory(dir, 'the storage directory');
    setDirError('error' in checkedDir ? checkedDir.error : null);
    setLimitError('error' in limit ? limit.error : null);
    if ('error' in checkedDir || 'error' in limit) return;
    const error = allocate(checkedDir.value, limit.value);
    if (error !== null) setDirError(error.message);
    else next();
  }

  return (
    <form onSubmit={submit} noValidate>
      <p data-testid="wizard-estimate">
        {estimate === null
          ? 'Reading the change maps…'
          : `Predicted change: ${estimate.estimate.changedBlocks} tracking blocks (${estimate.basis}). Each may copy a whole ${formatBytes(DEFAULT_CHUNK_BYTES)} chunk: ${formatBytes(estimate.estimate.predictedBytes)}; with room for twice that (at least ${formatBytes(MIN_SUGGESTED_BYTES)}, at most the devices' size), the suggested limit is ${formatBytes(estimate.estimate.limitBytes)}.`}
      </p>
      <ErrorText error={estimateError} testId="wizard-estimate-error" />
      <div className="field">
        <label htmlFor="wizard-storage-dir">Storage directory</label>
        <input
          id="wizard-storage-dir"
          data-testid="wizard-storage-dir"
          placeholder="/var/tmp"
          value={dir}
          aria-invalid={dirError !== null || undefined}
          aria-describedby={dirError ? 'wizard-storage-dir-error' : undefined}
          onChange={(e) => setDir(e.target.value)}
        />
        <FieldError id="wizard-storage-dir-error" text={dirError} />
      </div>
      <div className="field">
        <label htmlFor="wizard-storage-limit">Limit (MiB)</label>
        <input
          id="wizard-storage-limit"
          data-testid="wizard-storage-limit"
          inputMode="decimal"
          value={shown}
          aria-invalid={limitError !== null || undefined}
          aria-describedby={limitError ? 'wizard-storage-limit-error' : undefined}
          onChange={(e) => setLimitText(e.target.value)}
        />
        <FieldError id="wizard-storage-limit-error" text={limitError} />
      </div>
      {warnings.length > 0 ? (
        <ul className="warnings" aria-label="Warnings">
          {warnings.map((w) => (
            <li key={w.code}>{w.text}</li>
          ))}
        </ul>
      ) : null}
      <button type="submit" data-testid="wizard-next">
        Allocate, next: snapshot
      </button>
    </form>
  );
}

export function SnapshotStep({ next }: StepProps) {
  const wizard = useApp((s) => s.wizard);
  const setWizard = useApp((s) => s.setWizard);
  const createSnapshot = useApp((s) => s.createSnapshot);
  const takeSnapshot = useApp((s) => s.takeSnapshot);
  const store = useAppStoreApi();
  const selected = useApp((s) => s.selectedDevices);
  const allocation = useApp((s) => s.allocation);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ContractError | null>(null);

  async function run() {
    setBusy(true);
    let error = await createSnapshot();
    if (error === null) {
      const created = store.getState().createdSnapshotId;
      error = created === null ? { code: 'EINVAL', message: 'The snapshot was not created.' } : await takeSnapshot(created);
      if (error === null && created !== null) setWizard({ snapshotId: created, released: false });
    }
    setBusy(false);
    setError(error);
    if (error === null) next();
  }

  return (
    <>
      <p>
        A snapshot of {selected.join(', ')} with up to {allocation === null ? '—' : formatBytes(allocation.limitBytes)} of difference
        storage is created and taken now: the backup reads this frozen state while the devices stay in use.
      </p>
      {wizard.snapshotId !== null && !wizard.released ? (
        <p data-testid="wizard-snapshot">Snapshot {wizard.snapshotId} is taken.</p>
      ) : null}
      <ActionButton type="button" data-testid="wizard-take" disabled={busy} aria-busy={busy || undefined} onClick={() => void run()}>
        {busy ? 'Taking the snapshot…' : 'Create and take the snapshot'}
      </ActionButton>
      {wizard.snapshotId !== null && !wizard.released ? (
        <button type="button" data-testid="wizard-next" onClick={next}>
          Next: target folder
        </button>
      ) : null}
      <ErrorText error={error} testId="wizard-snapshot-error" />
    </>
  );
}

export function TargetStep({ next }: StepProps) {
  const dir = useApp((s) => s.backupDir);
  const setDir = useApp((s) => s.setBackupDir);
  const loadPlan = useApp((s) => s.loadPlan);
  const busy = useApp((s) => s.planBusy);
  const [error, setError] = useState<ContractError | null>(null);
  async function submit(e: FormEvent) {
    e.preventDefault();
    const problem = await loadPlan();
    setError(problem);
    if (problem === null) next();
  }
  return (
    <form onSubmit={(e) => void submit(e)} noValidate>
      <div className="field">
        <label htmlFor="wizard-backup-dir">Backup folder</label>
        <input
          id="wizard-backup-dir"
          data-testid="wizard-backup-dir"
          placeholder="/srv/backup"
          value={dir}
          aria-invalid={error !== null || undefined}
          aria-describedby="wizard-backup-dir-hint"
          onChange={(e) => setDir(e.target.value)}
        />
        <p id="wizard-backup-dir-hint" className="muted small-text">
          Each device gets its own chain folder inside it. Use the same folder again for incremental backups.
        </p>
        <ErrorText error={error} testId="wizard-backup-dir-error" />
      </div>
      <ActionButton type="submit" data-testid="wizard-next" disabled={busy} aria-busy={busy || undefined}>
        {busy ? 'Reading the folder…' : 'Next: kind of backup'}
      </ActionButton>
    </form>
  );
}

export function KindStep({ next }: StepProps) {
  const wizard = useApp((s) => s.wizard);
  const setWizard = useApp((s) => s.setWizard);
  const [error, setError] = useState<string | null>(null);
  const plan = wizard.plan;
  if (plan === null) return <p>Choose the backup folder first.</p>;
  const allowed = allowedKinds(plan);
  const reasons = plan.devices.map(reasonText).filter((t): t is string => t !== null);
  const chainExists = plan.devices.some((d) => d.points > 0);
  const broken = chainExists && !allowed.includes('incremental');
  const kinds: BackupKind[] = ['full', 'incremental', 'differential'];

  function go() {
    if (broken && !wizard.allowFull) {
      setError('The chain cannot continue: tick "Make a new full backup" to go on, or choose another folder.');
      return;
    }
    if (wizard.format === 'raw' && wizard.kind !== 'full') {
      setError('A raw image holds a full backup only: choose qcow2 for an incremental or differential backup.');
      return;
    }
    if (blockedDevices(plan as NonNullable<typeof plan>, wizard.kind).length > 0) {
      setError(`${KIND_LABELS[wizard.kind]} is not possible here; choose another kind.`);
      return;
    }
    setError(null);
    next();
  }

  return (
    <>
      <ul className="small-text" data-testid="wizard-chains">
        {plan.devices.map((d) => (
          <li key={d.device}>{chainSentence(d, shortTime)}</li>
        ))}
      </ul>
      <fieldset className="kind-choice">
        <legend>Kind of backup</legend>
        {kinds.map((k) => (
          <label key={k}>
            <input
              type="radio"
              name="backup-kind"
              data-testid={`wizard-kind-${k}`}
              checked={wizard.kind === k}
              disabled={!allowed.includes(k)}
              onChange={() => setWizard({ kind: k })}
            />
            <span>
              <strong>{KIND_LABELS[k]}</strong> <span className="muted small-text">{KIND_HINTS[k]}</span>
            </span>
          </label>
        ))}
      </fieldset>
      {reasons.length > 0 && chainExists ? (
        <div className="reason" data-testid="wizard-reason" role="note">
          <p>An incremental or differential backup cannot be made:</p>
          <ul>
            {reasons.map((r) => (
              <li key={r}>{r}</li>
            ))}
          </ul>
        </div>
      ) : reasons.length > 0 ? (
        <p className="muted small-text" data-testid="wizard-reason">
          {reasons.join(' ')}
        </p>
      ) : null}
      {broken ? (
        <label className="field checkbox-field">
          <input
            type="checkbox"
            data-testid="wizard-allow-full"
            checked={wizard.allowFull}
            aria-describedby={error ? 'wizard-kind-error' : undefined}
            onChange={(e) => setWizard({ allowFull: e.target.checked, kind: 'full' })}
          />
          Make a new full backup (starts a new chain in the same folder; the older points stay)
        </label>
      ) : null}
      <div className="field-row">
        <div className="field">
          <label htmlFor="wizard-format">Format</label>
          <select
            id="wizard-format"
            data-testid="wizard-format"
            value={wizard.format}
            onChange={(e) => setWizard(e.target.value === 'raw' ? { format: 'raw', compress: null } : { format: 'qcow2' })}
          >
            <option value="qcow2">qcow2 (incremental chains)</option>
            <option value="raw">raw (sparse, full only)</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="wizard-compress">Compression</label>
          <select
            id="wizard-compress"
            data-testid="wizard-compress"
            value={wizard.compress ?? 'none'}
            disabled={wizard.format !== 'qcow2'}
            onChange={(e) => setWizard({ compress: compressionOf(e.target.value) })}
          >
            <option value="none">none</option>
            <option value="zlib">zlib (every qemu reads it)</option>
            <option value="zstd">zstd (qemu 5.1 or later)</option>
          </select>
        </div>
      </div>
      <FieldError id="wizard-kind-error" text={error} />
      <button type="button" data-testid="wizard-next" onClick={go}>
        Next: run
      </button>
    </>
  );
}

function JobProgress({ job, testId }: { job: JobEntry; testId: string }) {
  return (
    <div data-testid={testId} data-state={job.state} aria-live="polite">
      <p>
        <progress max={job.total > 0 ? job.total : 1} value={Math.min(job.done, job.total)} aria-label={job.title} /> {progressText(job)}{' '}
        <span className="muted">{job.state === 'running' ? rateText(job) : ''}</span>
      </p>
      {job.state !== 'running' ? <p className={job.state === 'done' ? '' : 'error-text'}>{outcomeText(job)}</p> : null}
    </div>
  );
}

export function RunStep({ next }: StepProps) {
  const wizard = useApp((s) => s.wizard);
  const setWizard = useApp((s) => s.setWizard);
  const startBackup = useApp((s) => s.startBackup);
  const job = useApp((s) => s.jobs.find((j) => j.jobId === s.wizard.backupJobId) ?? null);
  const [error, setError] = useState<ContractError | null>(null);
  const [starting, setStarting] = useState(false);
  const running = job?.state === 'running';
  async function start() {
    setStarting(true);
    setError(await startBackup());
    setStarting(false);
  }
  const result = job?.result?.kind === 'backup' ? job.result : null;
  return (
    <>
      <p>
        {KIND_LABELS[wizard.kind]} backup{wizard.allowFull ? ' (a new full where a chain cannot continue)' : ''}, {wizard.format}
        {wizard.compress !== null ? `, compressed (${wizard.compress})` : ''}. The progress stays in the bar at the top while you use other screens.
      </p>
      {job === null || job.state !== 'done' ? (
        <ActionButton type="button" data-testid="wizard-start" disabled={starting || running} onClick={() => void start()}>
          {job === null ? 'Start the backup' : running ? 'Backing up…' : 'Start again'}
        </ActionButton>
      ) : null}
      <ErrorText error={error} testId="wizard-start-error" />
      {job !== null ? <JobProgress job={job} testId="wizard-backup-job" /> : null}
      {job?.state === 'failed' && !wizard.allowFull ? (
        <button type="button" data-testid="wizard-allow-full-retry" onClick={() => setWizard({ kind: 'full', allowFull: true, backupJobId: null })}>
          Make a new full backup
        </button>
      ) : null}
      {result !== null ? (
        <ul data-testid="wizard-backup-points">
          {result.points.map((p) => (
            <li key={p.chainDir}>
              {p.device}: {KIND_LABELS[p.pointKind].toLowerCase()} point {p.pointId}, {formatBytes(p.bytesWritten)} written ({formatBytes(p.changedBytes)} changed)
              {p.fullBecause !== null ? <span className="reason"> A full backup was made: {p.fullBecause}</span> : null}
            </li>
          ))}
        </ul>
      ) : null}
      {job?.state === 'done' ? (
        <button type="button" data-testid="wizard-next" onClick={next}>
          Next: verify
        </button>
      ) : null}
    </>
  );
}

export function VerifyStep({ next }: StepProps) {
  const startVerify = useApp((s) => s.startVerify);
  const ids = useApp((s) => s.wizard.verifyJobIds);
  const allJobs = useApp((s) => s.jobs);
  const verifyJobs = ids.map((id) => allJobs.find((j) => j.jobId === id)).filter((j): j is JobEntry => j !== undefined);
  const running = verifyJobs.some((j) => j.state === 'running');
  const passed = verifyJobs.length > 0 && verifyJobs.every((j) => j.state === 'done' && j.result?.kind === 'verify' && j.result.ok);
  const [error, setError] = useState<ContractError | null>(null);
  return (
    <>
      <p>Verify re-reads each new point and checks every block against its manifest (the hashes recorded at the take).</p>
      <div className="button-row">
        <ActionButton type="button" data-testid="wizard-verify" disabled={running} onClick={() => void startVerify().then(setError)}>
          {verifyJobs.length === 0 ? 'Verify the backup' : 'Verify again'}
        </ActionButton>
        <button type="button" data-testid="wizard-next" onClick={next}>
          {passed ? 'Next: release the snapshot' : 'Skip: release the snapshot'}
        </button>
      </div>
      <ErrorText error={error} testId="wizard-verify-error" />
      {verifyJobs.map((job) => (
        <JobProgress key={job.jobId} job={job} testId="wizard-verify-job" />
      ))}
      {passed ? (
        <p className="state-taken" data-testid="wizard-verified">
          The backup is verified.
        </p>
      ) : null}
    </>
  );
}

export function ReleaseStep() {
  const wizard = useApp((s) => s.wizard);
  const release = useApp((s) => s.releaseSnapshot);
  const reset = useApp((s) => s.resetWizard);
  const [error, setError] = useState<ContractError | null>(null);
  return (
    <>
      {wizard.released ? (
        <p data-testid="wizard-released">The snapshot is released and its difference storage freed. The backup is in the catalog.</p>
      ) : (
        <p>Release the snapshot {wizard.snapshotId ?? ''} now: it frees the difference storage. The next incremental backup takes a new one.</p>
      )}
      <div className="button-row">
        {!wizard.released && wizard.snapshotId !== null ? (
          <button type="button" data-testid="wizard-release" onClick={() => void release().then(setError)}>
            Release the snapshot
          </button>
        ) : null}
        <ScreenLink screen="catalog" testId="wizard-open-catalog">
          Open the catalog
        </ScreenLink>
        {wizard.released ? (
          <button type="button" data-testid="wizard-again" onClick={reset}>
            Start another backup
          </button>
        ) : null}
      </div>
      <ErrorText error={error} testId="wizard-release-error" />
    </>
  );
}
