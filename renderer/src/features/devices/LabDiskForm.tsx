import { useMemo, useState } from 'react';
import type { FormEvent } from 'react';
import { formatBytes } from '../../../../app/shared/format.js';
import type { ContractError } from '../../../../app/shared/result.js';
import { ErrorText } from '../../components/ErrorText.js';
import { useApp } from '../../store/context.js';
import { nextFreeName } from './next-free-name.js';
import { ActionButton } from '../../components/ActionButton.js';

const UNITS = { MiB: 1024 * 1024, GiB: 1024 * 1024 * 1024 } as const;
type Unit = keyof typeof UNITS;

export function LabDiskForm() {
  const createLabDisk = useApp((s) => s.createLabDisk);
  const devices = useApp((s) => s.devices);
  const form = useApp((s) => s.labDiskForm);
  const setForm = useApp((s) => s.setLabDiskForm);
  const suggested = useMemo(() => nextFreeName(devices), [devices]);
  const name = form.name ?? suggested;
  const { size, unit } = form;
  const [error, setError] = useState<ContractError | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    const bytes = Math.round(Number(size) * UNITS[unit]);
    if (!Number.isFinite(bytes) || bytes < 512) {
      setError({ code: 'EINVAL', message: 'Enter a size of at least 512 bytes.' });
      return;
    }
    if (bytes > Number.MAX_SAFE_INTEGER) {
      // The contract carries sizes as safe integers: the helper would refuse it.
      setError({ code: 'EINVAL', message: `Enter a size of at most ${formatBytes(Number.MAX_SAFE_INTEGER)}.` });
      return;
    }
    setBusy(true);
    const result = await createLabDisk(name.trim(), Math.floor(bytes / 512) * 512);
    setBusy(false);
    setError(result);
    // Created: suggest the next free name again.
    if (result === null) setForm({ name: null });
  }

  return (
    <form className="panel" aria-labelledby="lab-disk-title" onSubmit={(e) => void submit(e)}>
      <h3 id="lab-disk-title">Lab disk</h3>
      <p className="muted">A new sparse image file (no space used until written), opened as an engine device.</p>
      <div className="field">
        <label htmlFor="lab-disk-name">Name</label>
        <input id="lab-disk-name" data-testid="lab-disk-name" value={name} required onChange={(e) => setForm({ name: e.target.value })} />
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
            onChange={(e) => setForm({ size: e.target.value })}
          />
        </div>
        <div className="field">
          <label htmlFor="lab-disk-unit">Unit</label>
          <select id="lab-disk-unit" value={unit} onChange={(e) => setForm({ unit: e.target.value as Unit })}>
            <option value="MiB">MiB</option>
            <option value="GiB">GiB</option>
          </select>
        </div>
      </div>
      <ActionButton type="submit" data-testid="create-lab-disk" disabled={busy}>
        {busy ? 'Creating…' : 'Create lab disk'}
      </ActionButton>
      <ErrorText error={error} />
    </form>
  );
}
