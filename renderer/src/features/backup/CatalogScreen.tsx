import { useEffect, useRef, useState } from 'react';
import type { FormEvent } from 'react';
import { formatBytes } from '../../../../app/shared/format.js';
import type { ContractError } from '../../../../app/shared/result.js';
import type { CatalogChain, CatalogPoint } from '../../../../app/shared/types.js';
import { ConfirmDialog } from '../../components/ConfirmDialog.js';
import { CopyButton } from '../../components/CopyButton.js';
import { ErrorText } from '../../components/ErrorText.js';
import { UriWithCopy } from '../../components/UriWithCopy.js';
import { useApp } from '../../store/context.js';
import { pointKey } from '../../store/backup-slice.js';
import type { PointRef } from '../../store/backup-slice.js';
import { KIND_LABELS, shortTime } from './plan-text.js';

const VERIFY_LABELS: Record<CatalogPoint['verify'], string> = { ok: 'verified', failed: 'verify failed', never: 'not verified' };

function RestoreForm({ point, label, onDone }: { point: PointRef; label: string; onDone(): void }) {
  const restorePoint = useApp((s) => s.restorePoint);
  const [target, setTarget] = useState('');
  const [fieldError, setFieldError] = useState<string | null>(null);
  const [error, setError] = useState<ContractError | null>(null);
  const [confirming, setConfirming] = useState(false);
  const inputId = `restore-target-${pointKey(point)}`;

  function submit(e: FormEvent) {
    e.preventDefault();
    // used as typed: a space at either end is part of the path, never trimmed away
    if (!target.startsWith('/')) {
      setFieldError(`Give the target as an absolute path (starting with /): a new image file, or an existing file or device${target === '' ? '' : `, not "${target}"`}.`);
      return;
    }
    setFieldError(null);
    setConfirming(true);
  }

  async function confirm() {
    setConfirming(false);
    const problem = await restorePoint(point, target);
    setError(problem);
    if (problem === null) onDone();
  }

  return (
    <form className="restore-form" onSubmit={submit} noValidate>
      <div className="field">
        <label htmlFor={inputId}>Restore {label} to</label>
        <input
          id={inputId}
          data-testid="restore-target"
          placeholder="/var/tmp/restored.img"
          value={target}
          aria-invalid={fieldError !== null || undefined}
          aria-describedby={fieldError ? `${inputId}-error` : undefined}
          onChange={(e) => setTarget(e.target.value)}
        />
        {fieldError !== null ? (
          <p id={`${inputId}-error`} className="field-error" data-testid="restore-target-error">
            {fieldError}
          </p>
        ) : null}
      </div>
      <div className="button-row">
        <button type="submit" data-testid="restore-submit">
          Restore…
        </button>
        <button type="button" onClick={onDone}>
          Close
        </button>
      </div>
      <ErrorText error={error} testId="restore-error" />
      {confirming ? (
        <ConfirmDialog
          title="Restore this backup point?"
          confirmLabel={`Overwrite ${target}`}
          confirmTestId="restore-confirm"
          onConfirm={() => void confirm()}
          onCancel={() => setConfirming(false)}
        >
          <p data-testid="restore-dialog-text">
            {label} will be written to <strong>{target}</strong>. A new file is created; an existing file or device is overwritten
            completely.
          </p>
        </ConfirmDialog>
      ) : null}
    </form>
  );
}

function BrowsePanel({ point }: { point: PointRef }) {
  const shown = useApp((s) => s.exports[pointKey(point)]);
  const stop = useApp((s) => s.stopBrowsing);
  if (shown === undefined) return null;
  return (
    <div className="browse" data-testid="browse-panel">
      <p className="small-text">Served read-only over NBD:</p>
      <UriWithCopy uri={shown.uri} label="Copy the NBD URI" testId="browse-uri" copyTestId="browse-copy-uri" />
      <p className="small-text">Mount it read-only to pick files (as root):</p>
      <div className="command-block">
        <pre data-testid="browse-mount-hint">{shown.mountHint}</pre>
        <CopyButton text={shown.mountHint} label="Copy the mount commands" testId="browse-copy-hint" />
      </div>
      <button type="button" className="small" data-testid="browse-stop" onClick={() => void stop(point)}>
        Stop browsing
      </button>
    </div>
  );
}

function PointItem({ chain, point }: { chain: CatalogChain; point: CatalogPoint }) {
  const verifyPoint = useApp((s) => s.verifyPoint);
  const browsePoint = useApp((s) => s.browsePoint);
  const [restoring, setRestoring] = useState(false);
  const ref: PointRef = { chainDir: chain.chainDir, pointId: point.id };
  const label = `${KIND_LABELS[point.kind].toLowerCase()} ${shortTime(point.time)} of ${chain.device.path}`;
  const restoreButton = useRef<HTMLButtonElement>(null);
  return (
    <li className={`point-${point.kind}`} data-testid="catalog-point" data-point-id={point.id} data-kind={point.kind}>
      <div className="point-head">
        <strong>{KIND_LABELS[point.kind]}</strong>
        <time dateTime={point.time}>{shortTime(point.time)}</time>
        <span className={`state verify-${point.verify}`} data-testid="point-verify">
          {VERIFY_LABELS[point.verify]}
          {point.verifiedAt !== null ? ` ${shortTime(point.verifiedAt)}` : ''}
        </span>
      </div>
      <div className="point-facts muted">
        <span>size {formatBytes(point.fileSize)}</span>
        <span>changed {formatBytes(point.changedBytes)}</span>
        <span className="path">{point.file}</span>
      </div>
      <div className="button-row">
        <button type="button" className="small" data-testid="point-verify-button" aria-label={`Verify ${label}`} onClick={() => void verifyPoint(ref)}>
          Verify
        </button>
        <button
          type="button"
          className="small"
          ref={restoreButton}
          data-testid="point-restore-button"
          aria-label={`Restore ${label}`}
          aria-expanded={restoring}
          onClick={() => setRestoring(true)}
        >
          Restore
        </button>
        <button type="button" className="small" data-testid="point-browse-button" aria-label={`Browse ${label}`} onClick={() => void browsePoint(ref)}>
          Browse
        </button>
      </div>
      {restoring ? (
        <RestoreForm
          point={ref}
          label={label}
          onDone={() => {
            setRestoring(false);
            restoreButton.current?.focus();
          }}
        />
      ) : null}
      <BrowsePanel point={ref} />
    </li>
  );
}

/** The chains and points of a backup folder, as timelines (oldest first). */
export function CatalogScreen() {
  const dir = useApp((s) => s.backupDir);
  const setDir = useApp((s) => s.setBackupDir);
  const catalog = useApp((s) => s.catalog);
  const catalogError = useApp((s) => s.catalogError);
  const refresh = useApp((s) => s.refreshCatalog);
  const endedJobs = useApp((s) => s.jobs.filter((j) => j.state !== 'running').length);

  // A verify, backup or restore that ends changes what the catalog says (and so does
  // opening the screen); typing in the folder field does not reload it.
  const dirRef = useRef(dir);
  dirRef.current = dir;
  useEffect(() => {
    if (dirRef.current.trim().startsWith('/')) void refresh();
  }, [endedJobs, refresh]);

  return (
    <section aria-labelledby="screen-title">
      <h2 id="screen-title">Catalog</h2>
      <form
        className="toolbar catalog-form"
        onSubmit={(e) => {
          e.preventDefault();
          void refresh();
        }}
        noValidate
      >
        <div className="field">
          <label htmlFor="catalog-dir">Backup folder</label>
          <input id="catalog-dir" data-testid="catalog-dir" placeholder="/srv/backup" value={dir} onChange={(e) => setDir(e.target.value)} />
        </div>
        <button type="submit" data-testid="catalog-load">
          Show
        </button>
      </form>
      <ErrorText error={catalogError} testId="catalog-error" />
      {catalog !== null ? (
        <>
          <p className="muted" data-testid="catalog-summary">
            {catalog.chains.length} chain{catalog.chains.length === 1 ? '' : 's'} in {catalog.dir}, {formatBytes(catalog.spaceUsed)} on disk.
          </p>
          {catalog.chains.map((chain) => (
            <section key={chain.chainDir} className="panel" aria-label={`Chain of ${chain.device.path}`} data-testid="catalog-chain">
              <h3>
                {chain.device.path} <span className="muted small-text">({formatBytes(chain.device.size)}{chain.device.model ? `, ${chain.device.model}` : ''})</span>
              </h3>
              <p className="muted small-text path">{chain.chainDir}</p>
              <ol className="timeline" aria-label={`Points of ${chain.device.path}, oldest first`}>
                {chain.points.map((point) => (
                  <PointItem key={point.id} chain={chain} point={point} />
                ))}
              </ol>
            </section>
          ))}
        </>
      ) : null}
    </section>
  );
}
