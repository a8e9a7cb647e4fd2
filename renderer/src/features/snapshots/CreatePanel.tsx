import { useCallback, useState } from 'react';
import { escapeControlChars } from '../../../../app/shared/control-chars.js';
import type { ContractError } from '../../../../app/shared/result.js';
import { Breakable } from '../../components/Breakable.js';
import { ErrorText } from '../../components/ErrorText.js';
import { FieldError } from '../../components/FieldError.js';
import { checkSnapshotName } from '../../components/field-checks.js';
import { ScreenLink } from '../../components/ScreenLink.js';
import { usePolling } from '../../hooks/use-polling.js';
import { useApp } from '../../store/context.js';
import { describeStorage } from '../storage/storage-forms.js';
import { ActionButton } from '../../components/ActionButton.js';

/** Errors of snapshot create that the storage choice causes (a missing directory, an existing file, no room...). */
const STORAGE_ERRORS = new Set(['ENOENT', 'EEXIST', 'ENOTDIR', 'EACCES', 'EPERM', 'ENOSPC', 'EROFS', 'EISDIR']);

export function CreatePanel() {
  const selected = useApp((s) => s.selectedDevices);
  const devices = useApp((s) => s.devices);
  const bypassed = devices.filter((d) => selected.includes(d.id) && d.bypass.length > 0);
  // the write-bypass warning follows mounts made or undone while this screen is open
  const refreshDevices = useApp((s) => s.refreshDevices);
  usePolling(useCallback(() => refreshDevices(), [refreshDevices]), 5000, selected.length > 0);
  const allocation = useApp((s) => s.allocation);
  const busy = useApp((s) => s.snapshotBusy === 'new');
  const createSnapshot = useApp((s) => s.createSnapshot);
  const [error, setError] = useState<ContractError | null>(null);
  const [writableImages, setWritableImages] = useState(false);
  const [name, setName] = useState('');
  const [nameError, setNameError] = useState<string | null>(null);
  const ready = selected.length > 0 && allocation !== null;
  return (
    <div className="panel" role="group" aria-labelledby="create-title">
      <h3 id="create-title">New snapshot</h3>
      <p data-testid="create-devices">
        Devices:{' '}
        {selected.length > 0 ? (
          <>
            {escapeControlChars(selected.join(', '))} <ScreenLink screen="devices">change</ScreenLink>
          </>
        ) : (
          <>
            none selected. <ScreenLink screen="devices" testId="link-devices">Open the device list</ScreenLink>
          </>
        )}
      </p>
      {bypassed.length > 0 ? (
        <div className="warning" data-testid="create-bypass-warning">
          <strong>Writes may bypass the engine.</strong>{' '}
          {bypassed.map((d) => `${escapeControlChars(d.name)}: ${escapeControlChars(d.bypass.join('; '))}.`).join(' ')} The snapshot and the change map
          will not see those writes: unmount that filesystem, or mount the device through its NBD export instead.
        </div>
      ) : null}
      <p data-testid="create-storage">
        Difference storage:{' '}
        {allocation !== null ? (
          <>
            <Breakable text={describeStorage(allocation.form, allocation.directory, allocation.limitBytes)} />{' '}
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
      <div className="field">
        <label htmlFor="create-name">Name (optional)</label>
        <input
          id="create-name"
          data-testid="create-name"
          value={name}
          placeholder="before upgrade"
          aria-describedby={nameError !== null ? 'create-name-error create-name-hint' : 'create-name-hint'}
          aria-invalid={nameError !== null || undefined}
          onChange={(e) => {
            setName(e.target.value);
            const checked = checkSnapshotName(e.target.value);
            setNameError('error' in checked ? checked.error : null);
          }}
        />
        <FieldError id="create-name-error" text={nameError} />
        <p id="create-name-hint" className="muted small-text hint">
          Up to 64 characters; the helper keeps it, so the CLI and other windows show it too.
        </p>
      </div>
      <div className="field checkbox-field">
        <input
          type="checkbox"
          id="create-writable-images"
          data-testid="create-writable-images"
          checked={writableImages}
          onChange={(e) => setWritableImages(e.target.checked)}
          aria-describedby="create-writable-images-note"
        />
        <label htmlFor="create-writable-images">Writable images</label>
      </div>
      <p id="create-writable-images-note" className="muted small-text" data-testid="create-writable-images-note">
        {writableImages
          ? 'The images will accept writes (they land in the difference storage): an image may then differ from the moment of the take, and a backup of it will say so.'
          : 'The images will be read-only: they keep the contents of the moment of the take.'}
      </p>
      <ActionButton
        type="button"
        data-testid="create-snapshot"
        disabled={!ready || busy}
        aria-busy={busy || undefined}
        onClick={() => {
          const checked = checkSnapshotName(name);
          if ('error' in checked) {
            setNameError(checked.error);
            return;
          }
          void createSnapshot({ writableImages, name: checked.value ?? '' }).then((e) => {
            setError(e);
            if (e === null) setName('');
          });
        }}
      >
        {busy ? 'Creating snapshot…' : 'Create snapshot'}
      </ActionButton>
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
