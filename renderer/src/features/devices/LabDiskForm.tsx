import { useState } from 'react';
import type { FormEvent } from 'react';
import type { ContractError } from '../../../../app/shared/result.js';
import { ErrorText } from '../../components/ErrorText.js';
import { useApp } from '../../store/context.js';

const UNITS = { MiB: 1024 * 1024, GiB: 1024 * 1024 * 1024 } as const;
type Unit = keyof typeof UNITS;

export function LabDiskForm() {
  const createLabDisk = useApp((s) => s.createLabDisk);
  const [name, setName] = useState('disk1');
  const [size, setSize] = useState('512');
  const [unit, setUnit] = useState<Unit>('MiB');
  const [error, setError] = useState<ContractError | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    const bytes = Math.round(Number(size) * UNITS[unit]);
    if (!Number.isFinite(bytes) || bytes < 512) {
      setError({ code: 'EINVAL', message: 'Enter a size of at least 512 bytes.' });
      return;
    }
    setBusy(true);
    const result = await createLabDisk(name.trim(), Math.floor(bytes / 512) * 512);
    setBusy(false);
    setError(result);
  }

  return (
    <form className="panel" aria-labelledby="lab-disk-title" onSubmit={(e) => void submit(e)}>
      <h3 id="lab-disk-title">Lab disk</h3>
      <p className="muted">A new sparse image file opened as an engine device.</p>
      <div className="field">
        <label htmlFor="lab-disk-name">Name</label>
        <input id="lab-disk-name" data-testid="lab-disk-name" value={name} required onChange={(e) => setName(e.target.value)} />
      </div>
      <div className="field-row">
        <div className="field">
          <label htmlFor="lab-disk-size">Size</label>
          <input
            id="lab-disk-size"
            data-testid="lab-disk-size"
            type="number"
            min="1"
            step="any"
            value={size}
            required
            onChange={(e) => setSize(e.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor="lab-disk-unit">Unit</label>
          <select id="lab-disk-unit" value={unit} onChange={(e) => setUnit(e.target.value as Unit)}>
            <option value="MiB">MiB</option>
            <option value="GiB">GiB</option>
          </select>
        </div>
      </div>
      <button type="submit" data-testid="create-lab-disk" disabled={busy}>
        Create lab disk
      </button>
      <ErrorText error={error} />
    </form>
  );
}
