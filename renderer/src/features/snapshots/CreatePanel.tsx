import { useState } from 'react';
import { formatBytes } from '../../../../app/shared/format.js';
import type { ContractError } from '../../../../app/shared/result.js';
import { Breakable } from '../../components/Breakable.js';
import { ErrorText } from '../../components/ErrorText.js';
import { ScreenLink } from '../../components/ScreenLink.js';
import { useApp } from '../../store/context.js';

/** Errors of snapshot create that the storage choice causes (a missing directory, an existing file, no room...). */
const STORAGE_ERRORS = new Set(['ENOENT', 'EEXIST', 'ENOTDIR', 'EACCES', 'EPERM', 'ENOSPC', 'EROFS', 'EISDIR']);

export function CreatePanel() {
  const selected = useApp((s) => s.selectedDevices);
  const allocation = useApp((s) => s.allocation);
  const busy = useApp((s) => s.snapshotBusy === 'new');
  const createSnapshot = useApp((s) => s.createSnapshot);
  const [error, setError] = useState<ContractError | null>(null);
  const ready = selected.length > 0 && allocation !== null;
  return (
    <div className="panel" role="group" aria-labelledby="create-title">
      <h3 id="create-title">New snapshot</h3>
      <p data-testid="create-devices">
        Devices:{' '}
        {selected.length > 0 ? (
          <>
            {selected.join(', ')} <ScreenLink screen="devices">change</ScreenLink>
          </>
        ) : (
          <>
            none selected. <ScreenLink screen="devices" testId="link-devices">Open the device list</ScreenLink>
          </>
        )}
      </p>
      <p data-testid="create-storage">
        Difference storage:{' '}
        {allocation !== null ? (
          <>
            up to {formatBytes(allocation.limitBytes)} in <Breakable text={allocation.directory} />{' '}
            <ScreenLink screen="storage">change</ScreenLink>
          </>
        ) : (
          <>
            not allocated.{' '}
            <ScreenLink screen="storage" testId="link-storage">
              Open the storage screen
            </ScreenLink>
          </>
        )}
      </p>
      <p className="muted small-text">
        Create adds the devices to a new snapshot; Take then freezes their contents as images you can read.
      </p>
      <button
        type="button"
        data-testid="create-snapshot"
        disabled={!ready || busy}
        aria-busy={busy || undefined}
        onClick={() => void createSnapshot().then(setError)}
      >
        {busy ? 'Creating snapshot…' : 'Create snapshot'}
      </button>
      <ErrorText error={error} />
      {error !== null && STORAGE_ERRORS.has(error.code) ? (
        <p className="small-text" data-testid="create-storage-hint">
          The difference storage could not be created there.{' '}
          <ScreenLink screen="storage">Choose another directory</ScreenLink>
        </p>
      ) : null}
    </div>
  );
}
