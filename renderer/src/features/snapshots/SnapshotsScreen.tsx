import { useCallback, useState } from 'react';
import { escapeControlChars } from '../../../../app/shared/control-chars.js';
import { formatDateTime } from '../../../../app/shared/format.js';
import type { ContractError } from '../../../../app/shared/result.js';
import type { SnapshotEntry } from '../../../../app/shared/types.js';
import { ConfirmDialog } from '../../components/ConfirmDialog.js';
import { UriWithCopy } from '../../components/UriWithCopy.js';
import { ErrorText } from '../../components/ErrorText.js';
import { StaleNote } from '../../components/StaleNote.js';
import { usePolling } from '../../hooks/use-polling.js';
import { useApp } from '../../store/context.js';
import { Gauge } from '../storage/StorageGauges.js';
import { CreatePanel } from './CreatePanel.js';
import { ActionButton } from '../../components/ActionButton.js';

const STATE_LABELS: Record<SnapshotEntry['state'], string> = {
  created: 'Created (not taken)',
  taken: 'Taken',
  failed: 'Failed',
};

function SnapshotCard({ snapshot, onDestroy }: { snapshot: SnapshotEntry; onDestroy(s: SnapshotEntry): void }) {
  const busy = useApp((s) => s.snapshotBusy === snapshot.id);
  const take = useApp((s) => s.takeSnapshot);
  const samples = useApp((s) => s.storageSamples[snapshot.id]);
  const [error, setError] = useState<ContractError | null>(null);
  const titleId = `snapshot-${snapshot.id}`;
  return (
    <article className="card" data-testid="snapshot-row" data-snapshot-id={snapshot.id} aria-labelledby={titleId}>
      <header className="card-header">
        <h3 id={titleId}>
          {snapshot.name ? (
            <>
              <span data-testid="snapshot-name">{escapeControlChars(snapshot.name)}</span> <code className="muted">{snapshot.id}</code>
            </>
          ) : (
            <>
              Snapshot <code>{snapshot.id}</code>
            </>
          )}
        </h3>
        <span className={`state state-${snapshot.state}`} data-testid="snapshot-state">
          {STATE_LABELS[snapshot.state]}
        </span>
      </header>
      {snapshot.createdMs !== undefined ? (
        <p className="muted small-text" data-testid="snapshot-times">
          Created <time dateTime={new Date(snapshot.createdMs).toISOString()}>{formatDateTime(snapshot.createdMs)}</time>
          {snapshot.takenMs != null ? (
            <>
              {' '}
              · taken <time dateTime={new Date(snapshot.takenMs).toISOString()}>{formatDateTime(snapshot.takenMs)}</time>
            </>
          ) : (
            ' · not taken yet'
          )}
        </p>
      ) : null}
      <table>
        <caption className="visually-hidden">Devices of snapshot {snapshot.id}</caption>
        <thead>
          <tr>
            <th scope="col">Device</th>
            <th scope="col">Error code</th>
            <th scope="col">Image</th>
            <th scope="col">Image NBD URI</th>
          </tr>
        </thead>
        <tbody>
          {snapshot.devices.map((d) => (
            <tr key={d.device} data-testid="snapshot-device">
              <th scope="row">{escapeControlChars(d.device)}</th>
              <td data-testid="snapshot-error-code" className={d.errorCode !== 0 ? 'error-text' : undefined}>
                {d.errorCode === 0 ? '0 (none)' : `${d.errorCode} ${d.errorName}`}
              </td>
              <td data-testid="snapshot-image">{d.image || '— (not taken)'}</td>
              <td className="uri-cell">
                {d.imageNbdUri !== null ? (
                  <UriWithCopy uri={d.imageNbdUri} label={`Copy NBD URI of ${d.image}`} testId="image-nbd-uri" />
                ) : (
                  '—'
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="small-text" data-testid="snapshot-images-mode">
        {snapshot.writableImages
          ? 'Images: writable. Writes to them land in the difference storage, so an image may differ from the moment of the take.'
          : 'Images: read-only. They keep the contents of the moment of the take.'}
      </p>
      {snapshot.state === 'created' ? (
        <p className="muted small-text" data-testid="take-hint">
          Not taken yet: Take freezes the devices' contents now and makes their images readable.
        </p>
      ) : null}
      {snapshot.state === 'failed' ? (
        <p className="error-text small-text" data-testid="failed-hint">
          An image is corrupted (see the error codes): its contents can no longer be trusted. Destroy this snapshot and
          create a new one, with a larger storage limit if the storage was full.
        </p>
      ) : null}
      {snapshot.storage !== null ? (
        <Gauge snapshotId={snapshot.id} gauge={snapshot.storage} failed={snapshot.state === 'failed'} samples={samples} />
      ) : null}
      <div className="button-row">
        <ActionButton
          type="button"
          data-testid="take-snapshot"
          disabled={busy || snapshot.state !== 'created'}
          aria-busy={busy || undefined}
          onClick={() => void take(snapshot.id).then(setError)}
        >
          {busy && snapshot.state === 'created' ? 'Taking…' : 'Take'}
        </ActionButton>
        <ActionButton type="button" className="danger" data-testid="destroy-snapshot" disabled={busy} onClick={() => onDestroy(snapshot)}>
          Destroy
        </ActionButton>
      </div>
      <ErrorText error={error} />
    </article>
  );
}

export function SnapshotsScreen() {
  const snapshots = useApp((s) => s.snapshots);
  const loaded = useApp((s) => s.snapshotsLoaded);
  const error = useApp((s) => s.snapshotsError);
  const refresh = useApp((s) => s.refreshSnapshots);
  const destroy = useApp((s) => s.destroySnapshot);
  const [confirming, setConfirming] = useState<SnapshotEntry | null>(null);
  usePolling(useCallback(() => refresh(), [refresh]), 1000);

  return (
    <section aria-labelledby="screen-title">
      <h2 id="screen-title">Snapshots</h2>
      <StaleNote />
      <CreatePanel />
      <ErrorText error={error} testId="snapshots-error" />
      {loaded && snapshots.length === 0 ? (
        <p className="muted" data-testid="snapshots-empty">
          No snapshots. Your snapshots appear here once created.
        </p>
      ) : null}
      {snapshots.map((s) => (
        <SnapshotCard key={s.id} snapshot={s} onDestroy={setConfirming} />
      ))}
      {confirming !== null ? (
        <ConfirmDialog
          title="Destroy snapshot?"
          confirmLabel="Destroy"
          confirmTestId="confirm-destroy"
          onCancel={() => setConfirming(null)}
          onConfirm={() => {
            const id = confirming.id;
            setConfirming(null);
            void destroy(id).then((error) => {
              // The Destroy button went away with the card: keep the focus on the screen.
              if (error === null) document.getElementById('main')?.focus();
            });
          }}
        >
          <p>
            Destroying snapshot <code>{confirming.id}</code> removes the images of{' '}
            <strong data-testid="destroy-devices">{escapeControlChars(confirming.devices.map((d) => d.device).join(', '))}</strong> and deletes its
            difference storage file. The devices themselves are not changed and keep being tracked. This cannot be
            undone.
          </p>
        </ConfirmDialog>
      ) : null}
    </section>
  );
}
