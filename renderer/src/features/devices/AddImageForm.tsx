import { useState } from 'react';
import type { FormEvent } from 'react';
import type { ContractError } from '../../../../app/shared/result.js';
import { ErrorText } from '../../components/ErrorText.js';
import { FieldError } from '../../components/FieldError.js';
import { useApp } from '../../store/context.js';
import { ActionButton } from '../../components/ActionButton.js';

export function AddImageForm() {
  const addImage = useApp((s) => s.addImage);
  const [path, setPath] = useState('');
  const [error, setError] = useState<ContractError | null>(null);
  const [pathError, setPathError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    const problem = path.startsWith('/') ? null : `Enter the absolute path of an image file or block device (starting with /)${path === '' ? '' : `, not "${path}"`}.`;
    setPathError(problem);
    setError(null);
    if (problem !== null) return;
    setBusy(true);
    const result = await addImage(path);
    setBusy(false);
    setError(result);
    if (result === null) setPath('');
  }

  return (
    <form className="panel" aria-labelledby="add-image-title" onSubmit={(e) => void submit(e)} noValidate>
      <h3 id="add-image-title">Existing image</h3>
      <p className="muted">Open a raw image file, or a block device for the engine to front, as an engine device.</p>
      <div className="field">
        <label htmlFor="add-image-path">Image path</label>
        <input
          id="add-image-path"
          data-testid="add-image-path"
          placeholder="/var/lib/images/disk.img or /dev/sdb"
          value={path}
          aria-invalid={pathError !== null || undefined}
          aria-describedby={pathError !== null ? 'add-image-path-error' : undefined}
          onChange={(e) => {
            setPath(e.target.value);
            setPathError(null);
          }}
        />
        <FieldError id="add-image-path-error" text={pathError} />
      </div>
      <ActionButton type="submit" data-testid="add-image" disabled={busy}>
        {busy ? 'Adding…' : 'Add image'}
      </ActionButton>
      <ErrorText error={error} />
    </form>
  );
}
