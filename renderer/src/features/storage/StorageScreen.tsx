import { useCallback, useMemo, useState } from 'react';
import type { FormEvent } from 'react';
import { escapeControlChars } from '../../../../app/shared/control-chars.js';
import { formatBytes } from '../../../../app/shared/format.js';
import type { ContractError } from '../../../../app/shared/result.js';
import { ErrorText } from '../../components/ErrorText.js';
import { FieldError } from '../../components/FieldError.js';
import { MAX_RATE_MIBPS, checkDirectory, parseAmount, parseSize } from '../../components/field-checks.js';
import { usePolling } from '../../hooks/use-polling.js';
import { ScreenLink } from '../../components/ScreenLink.js';
import { useApp } from '../../store/context.js';
import { StorageGauges } from './StorageGauges.js';
import { storageWarnings, suggestedLimitBytes } from './storage-advice.js';
import { STORAGE_FORM_CHOICES, describeStorage, formChoice } from './storage-forms.js';
import { DEFAULT_CHUNK_BYTES, PLANNED_HOLD_SECONDS, expectedCopiedBytes, workloadPlan } from './cow-estimate.js';

const MiB = 1024 * 1024;

function FilesystemsTable() {
  const filesystems = useApp((s) => s.filesystems);
  const dir = useApp((s) => s.storageDir);
  const setDir = useApp((s) => s.setStorageDir);
  return (
    <div className="table-wrap">
      <table data-testid="filesystems-table">
        <caption className="visually-hidden">Mounted filesystems</caption>
        <thead>
          <tr>
            <th scope="col">Use</th>
            <th scope="col">Mount point</th>
            <th scope="col">Source</th>
            <th scope="col">Type</th>
            <th scope="col">Free</th>
            <th scope="col">Total</th>
          </tr>
        </thead>
        <tbody>
          {filesystems.map((fs) => {
            const id = `fs-${fs.mountpoint}`;
            return (
              <tr key={fs.mountpoint} data-testid="filesystem-row">
                <td>
                  <input
                    id={id}
                    type="radio"
                    name="storage-fs"
                    checked={dir === fs.mountpoint}
                    onChange={() => setDir(fs.mountpoint)}
                    aria-label={`Use ${escapeControlChars(fs.mountpoint)}`}
                  />
                </td>
                <th scope="row">
                  <label htmlFor={id}>{escapeControlChars(fs.mountpoint)}</label>
                </th>
                <td>{fs.source ? escapeControlChars(fs.source) : '—'}</td>
                <td>{fs.fstype}</td>
                <td className="num">
                  {formatBytes(fs.freeBytes)}{' '}
                  <meter
                    min={0}
                    max={fs.totalBytes || 1}
                    value={Math.max(0, fs.totalBytes - fs.freeBytes)}
                    aria-label={`Used space on ${escapeControlChars(fs.mountpoint)}`}
                    title={`${formatBytes(Math.max(0, fs.totalBytes - fs.freeBytes))} used`}
                  />
                </td>
                <td className="num">{formatBytes(fs.totalBytes)}</td>
              </tr>
            );
          })}
          {filesystems.length === 0 ? (
            <tr>
              <td colSpan={6} className="muted">
                No filesystems listed.
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
    </div>
  );
}

export function StorageScreen() {
  const refreshFilesystems = useApp((s) => s.refreshFilesystems);
  const refreshSnapshots = useApp((s) => s.refreshSnapshots);
  const filesystemsError = useApp((s) => s.filesystemsError);
  const filesystems = useApp((s) => s.filesystems);
  const devices = useApp((s) => s.devices);
  const selectedIds = useApp((s) => s.selectedDevices);
  const dir = useApp((s) => s.storageDir);
  const setDir = useApp((s) => s.setStorageDir);
  const typedLimit = useApp((s) => s.storageLimitBytes);
  const setLimit = useApp((s) => s.setStorageLimit);
  const allocate = useApp((s) => s.allocate);
  const allocation = useApp((s) => s.allocation);
  const form = useApp((s) => s.storageForm);
  const setForm = useApp((s) => s.setStorageForm);
  const choice = formChoice(form);
  const [error, setError] = useState<ContractError | null>(null);
  const [limitText, setLimitText] = useState<string | null>(null);
  const [limitError, setLimitError] = useState<string | null>(null);
  const [dirError, setDirError] = useState<string | null>(null);

  usePolling(useCallback(() => refreshFilesystems(), [refreshFilesystems]), 5000);
  usePolling(useCallback(() => refreshSnapshots(), [refreshSnapshots]), 1000);

  const selected = useMemo(() => devices.filter((d) => selectedIds.includes(d.id)), [devices, selectedIds]);
  const workloadRate = useApp((s) => s.workloadForm.rate);
  // the Devices screen's rate as typed there; one it refuses is not taken as another number here
  const typedRate = parseAmount(workloadRate, 'the rate', 'MiB/s', MAX_RATE_MIBPS);
  const rate = 'value' in typedRate ? typedRate.value : 0;
  const chunkBytes = useApp((s) => s.status?.chunkBytes ?? DEFAULT_CHUNK_BYTES);
  const plan = workloadPlan(rate, chunkBytes);
  const sizes = selected.map((d) => d.sizeBytes);
  const suggested = suggestedLimitBytes(sizes, plan);
  const copied = expectedCopiedBytes(sizes, plan);
  const limitBytes = typedLimit ?? suggested;
  const warnings = storageWarnings(dir, limitBytes, filesystems, selected);
  // exact: a whole number of sectors in MiB has at most 11 decimals
  const shownLimit = limitText ?? (limitBytes > 0 ? String(limitBytes / MiB) : '');

  function submit(e: FormEvent) {
    e.preventDefault();
    const checkedDir = checkDirectory(dir, `the ${choice.field.toLowerCase()}`);
    const limit = parseSize(shownLimit, 'the limit', 'MiB', MiB);
    setDirError('error' in checkedDir ? checkedDir.error : null);
    setLimitError('error' in limit ? limit.error : null);
    if ('error' in checkedDir || 'error' in limit) {
      setError(null);
      return;
    }
    setError(allocate(checkedDir.value, limit.value, form));
  }

  return (
    <section aria-labelledby="screen-title">
      <h2 id="screen-title">Difference storage</h2>
      <p className="muted">
        While a snapshot is held, the old contents of overwritten blocks are copied into a difference-storage file. Choose
        where it goes and how large it may grow.
      </p>
      <ErrorText error={filesystemsError} testId="filesystems-error" />
      <FilesystemsTable />
      <form className="panel" aria-labelledby="allocate-title" onSubmit={submit} noValidate>
        <h3 id="allocate-title">Allocate</h3>
        <fieldset className="field" data-testid="storage-form">
          <legend>Where the copies go</legend>
          {STORAGE_FORM_CHOICES.map((c) => (
            <label key={c.form} className="radio-line">
              <input type="radio" name="storage-form" value={c.form} checked={form === c.form} onChange={() => setForm(c.form)} /> {c.label}
            </label>
          ))}
        </fieldset>
        <div className="field">
          <label htmlFor="storage-dir">{choice.field}</label>
          <input
            id="storage-dir"
            data-testid="storage-dir"
            placeholder={choice.placeholder}
            aria-describedby={dirError !== null ? 'storage-dir-error storage-dir-hint' : 'storage-dir-hint'}
            aria-invalid={dirError !== null || undefined}
            value={dir}
            onChange={(e) => {
              setDir(e.target.value);
              setDirError(null);
            }}
          />
          <FieldError id="storage-dir-error" text={dirError} />
          <p id="storage-dir-hint" className="muted small-text hint" data-testid="storage-form-hint">
            {choice.hint}
            {form === 'new-file' || form === 'directory' ? ' Pick one in the table above or type it.' : ''}
          </p>
        </div>
        <div className="field">
          <label htmlFor="storage-limit">Limit (MiB)</label>
          <input
            id="storage-limit"
            data-testid="storage-limit"
            inputMode="decimal"
            value={shownLimit}
            aria-describedby={limitError !== null ? 'storage-limit-error storage-limit-hint' : 'storage-limit-hint'}
            aria-invalid={limitError !== null || undefined}
            onChange={(e) => {
              const text = e.target.value;
              setLimitText(text);
              const checked = parseSize(text, 'the limit', 'MiB', MiB);
              // an invalid limit is never replaced by another number: the error stays until it is fixed
              setLimitError('error' in checked ? checked.error : null);
              if ('value' in checked) setLimit(checked.value);
            }}
          />
          <FieldError id="storage-limit-error" text={limitError} />
          <p id="storage-limit-hint" className="muted small-text" data-testid="suggested-limit">
            {selected.length > 0
              ? `Suggested: ${formatBytes(suggested)} for the ${selected.length} selected device${selected.length > 1 ? 's' : ''} (${formatBytes(selected.reduce((a, d) => a + d.sizeBytes, 0))}): at least 15% of them, and room for ${formatBytes(copied)} of copies — the first write into each ${formatBytes(chunkBytes)} chunk copies the whole chunk, and a workload at ${rate} MiB/s held ${PLANNED_HOLD_SECONDS / 60} min is expected to touch that much.${'error' in typedRate ? ` (The workload rate on the Devices screen, "${workloadRate}", is not a rate it accepts, so none is assumed.)` : ''}`
              : 'Select devices on the Devices screen for a suggested limit.'}
            {(typedLimit !== null || limitText !== null) && suggested > 0 ? (
              <>
                {' '}
                <button
                  type="button"
                  className="small"
                  onClick={() => {
                    setLimit(null);
                    setLimitText(null);
                    setLimitError(null);
                  }}
                >
                  Use suggested
                </button>
              </>
            ) : null}
          </p>
        </div>
        {warnings.length > 0 ? (
          <ul className="warnings" aria-label="Warnings">
            {warnings.map((w) => (
              <li key={w.code} className="warning" data-testid="storage-warning" data-code={w.code}>
                {w.text}
              </li>
            ))}
          </ul>
        ) : null}
        <button type="submit" data-testid="allocate">
          Allocate
        </button>
        <ErrorText error={error} />
        <p data-testid="allocation" aria-live="polite">
          {allocation === null
            ? 'No storage allocated yet.'
            : `Allocated: ${describeStorage(allocation.form, allocation.directory, allocation.limitBytes)}. Used by the next "Create snapshot".`}
        </p>
        {allocation !== null ? (
          <p>
            <ScreenLink screen="snapshots" testId="link-next-snapshot">
              Next: create the snapshot
            </ScreenLink>
          </p>
        ) : null}
      </form>
      <h3>Storage of current snapshots</h3>
      <StorageGauges />
    </section>
  );
}
