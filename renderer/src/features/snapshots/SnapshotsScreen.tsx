import { useCallback, useState } from 'react';
import { formatBytes } from '../../../../app/shared/format.js';
import type { ContractError } from '../../../../app/shared/result.js';
import type { SnapshotEntry } from '../../../../app/shared/types.js';
import { ConfirmDialog } from '../../components/ConfirmDialog.js';
import { CopyButton } from '../../components/CopyButton.js';
import { ErrorText } from '../../components/ErrorText.js';
import { usePolling } from '../../hooks/use-polling.js';
import { useApp } from '../../store/context.js';
import { Gauge } from '../storage/StorageGauges.js';

const STATE_LABELS: Record<SnapshotEntry['state'], string> = {
  created: 'Created (not taken)',
  taken: 'Taken',
  failed: 'Failed',
};

function CreatePanel() {
  const selected = useApp((s) => s.selectedDevices);
  const allocation = useApp((s) => s.allocation);
  const busy = useApp((s) => s.snapshotBusy === 'new');
  const createSnapshot = useApp((s) => s.createSnapshot);
  const [error, setError] = useState<ContractError | null>(null);
  const ready = selected.length > 0 && allocation !== null;
  return (
    <div className="panel" aria-labelledby="create-title">
      <h3 id="create-title">New snapshot</h3>
      <p data-testid="create-devices">
        Devices:{' '}
        {selected.length > 0 ? (
          selected.join(', ')
        ) : (
'none selected (tick them on the Devices screen).'
        )}
      </p>
      <p data-testid="create-storage">
        Difference storage:{' '}
        {allocation !== null ? (
          `up to ${formatBytes(allocation.limitBytes)} in ${allocation.directory}`
        ) : (
'not allocated (see the Difference storage screen).'
        )}
      </p>
      <button
        type="button"
        data-testid="create-snapshot"
        disabled={!ready || busy}
        onClick={() => void createSnapshot().then(setError)}
      >
        Create snapshot
      </button>
      <ErrorText error={error} />
    </div>
  );
}

function SnapshotCard({ snapshot, onDestroy }: { snapshot: SnapshotEntry; onDestroy(s: SnapshotEntry): void }) {
  const busy = useApp((s) => s.snapshotBusy === snapshot.id);
  const take = useApp((s) => s.takeSnapshot);
  const [error, setError] = useState<ContractError | null>(null);
  const titleId = `snapshot-${snapshot.id}`;
  return (
    <article className="card" data-testid="snapshot-row" data-snapshot-id={snapshot.id} aria-labelledby={titleId}>
      <header className="card-header">
        <h3 id={titleId}>
          Snapshot <code>{snapshot.id}</code>
        </h3>
        <span className={`state state-${snapshot.state}`} data-testid="snapshot-state">
          {STATE_LABELS[snapshot.state]}
        </span>
      </header>
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
              <th scope="row">{d.device}</th>
              <td data-testid="snapshot-error-code" className={d.errorCode !== 0 ? 'error-text' : undefined}>
                {d.errorCode === 0 ? '0 (none)' : `${d.errorCode} ${d.errorName}`}
              </td>
              <td data-testid="snapshot-image">{d.image || '— (not taken)'}</td>
              <td>
                {d.imageNbdUri !== null ? (
                  <>
                    <code data-testid="image-nbd-uri">{d.imageNbdUri}</code>{' '}
                    <CopyButton text={d.imageNbdUri} label={`Copy NBD URI of ${d.image}`} />
                  </>
                ) : (
                  '—'
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {snapshot.storage !== null ? <Gauge snapshotId={snapshot.id} gauge={snapshot.storage} /> : null}
      <div className="button-row">
        <button
          type="button"
          data-testid="take-snapshot"
          disabled={busy || snapshot.state !== 'created'}
          onClick={() => void take(snapshot.id).then(setError)}
        >
          Take
        </button>
        <button type="button" className="danger" data-testid="destroy-snapshot" disabled={busy} onClick={() => onDestroy(snapshot)}>
          Destroy
        </button>
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
      <CreatePanel />
      <ErrorText error={error} testId="snapshots-error" />
      {loaded && snapshots.length === 0 ? <p className="muted">No snapshots.</p> : null}
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
            void destroy(id);
          }}
        >
          <p>
            Destroying snapshot <code>{confirming.id}</code> removes the images of{' '}
            <strong data-testid="destroy-devices">{confirming.devices.map((d) => d.device).join(', ')}</strong> and deletes its
            difference storage. The devices keep being tracked.
          </p>
        </ConfirmDialog>
      ) : null}
    </section>
  );
}
