import { useState } from 'react';
import type { FormEvent } from 'react';
import type { ContractError } from '../../../../app/shared/result.js';
import { ErrorText } from '../../components/ErrorText.js';
import { useApp } from '../../store/context.js';
import { ActionButton } from '../../components/ActionButton.js';

export function AddImageForm() {
  const addImage = useApp((s) => s.addImage);
  const [path, setPath] = useState('');
  const [error, setError] = useState<ContractError | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!path.startsWith('/')) {
      setError({ code: 'EINVAL', message: 'Enter the absolute path of an image file or block device (starting with /).' });
      return;
    }
    setBusy(true);
    const result = await addImage(path);
    setBusy(false);
    setError(result);
    if (result === null) setPath('');
  }

  return (
    <form className="panel" aria-labelledby="add-image-title" onSubmit={(e) => void submit(e)}>
      <h3 id="add-image-title">Existing image</h3>
      <p className="muted">Open a raw image file, or a block device for the engine to front, as an engine device.</p>
      <div className="field">
        <label htmlFor="add-image-path">Image path</label>
        <input
          id="add-image-path"
          data-testid="add-image-path"
          placeholder="/var/lib/images/disk.img or /dev/sdb"
          value={path}
          required
          onChange={(e) => setPath(e.target.value)}
        />
      </div>
      <ActionButton type="submit" data-testid="add-image" disabled={busy}>
        {busy ? 'Adding…' : 'Add image'}
      </ActionButton>
      <ErrorText error={error} />
    </form>
  );
}
