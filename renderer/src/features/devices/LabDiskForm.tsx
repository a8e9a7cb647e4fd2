import { useMemo, useState } from 'react';
import type { FormEvent } from 'react';
import type { ContractError } from '../../../../app/shared/result.js';
import { ErrorText } from '../../components/ErrorText.js';
import { FieldError } from '../../components/FieldError.js';
import { checkDeviceName, parseSize } from '../../components/field-checks.js';
import { useApp } from '../../store/context.js';
import { nextFreeName, takenNames } from './next-free-name.js';
import { ActionButton } from '../../components/ActionButton.js';

const UNITS = { MiB: 1024 * 1024, GiB: 1024 * 1024 * 1024 } as const;
type Unit = keyof typeof UNITS;

export function LabDiskForm() {
  const createLabDisk = useApp((s) => s.createLabDisk);
  const devices = useApp((s) => s.devices);
  const form = useApp((s) => s.labDiskForm);
  const setForm = useApp((s) => s.setLabDiskForm);
  const suggested = useMemo(() => nextFreeName(devices, 'disk', form.fileTaken), [devices, form.fileTaken]);
  const name = form.name ?? suggested;
  const { size, unit } = form;
  const [error, setError] = useState<ContractError | null>(null);
  const [nameError, setNameError] = useState<string | null>(null);
  const [sizeError, setSizeError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    const checkedName = checkDeviceName(name, takenNames(devices, form.fileTaken), suggested);
    const bytes = parseSize(size, 'the size', unit, UNITS[unit]);
    setNameError('error' in checkedName ? checkedName.error : null);
    setSizeError('error' in bytes ? bytes.error : null);
    setError(null);
    if ('error' in checkedName || 'error' in bytes) return;
    setBusy(true);
    const result = await createLabDisk(checkedName.value, bytes.value);
    setBusy(false);
    if (result?.code === 'EEXIST') {
      // its image file is there (a lab disk removed earlier): never offered again
      const fileTaken = [...form.fileTaken, checkedName.value];
      const free = nextFreeName(devices, 'disk', fileTaken);
      setForm({ name: null, fileTaken });
      setNameError(`The image file of ${checkedName.value} exists already (a lab disk removed earlier?); the first free name, ${free}, is filled in.`);
      return;
    }
    setError(result);
    // Created: suggest the next free name again.
    if (result === null) setForm({ name: null });
  }

  return (
    <form className="panel" aria-labelledby="lab-disk-title" onSubmit={(e) => void submit(e)} noValidate>
      <h3 id="lab-disk-title">Lab disk</h3>
      <p className="muted">A new sparse image file (no space used until written), opened as an engine device.</p>
      <div className="field">
        <label htmlFor="lab-disk-name">Name</label>
        <input
          id="lab-disk-name"
          data-testid="lab-disk-name"
          value={name}
          aria-invalid={nameError !== null || undefined}
          aria-describedby={nameError !== null ? 'lab-disk-name-error' : undefined}
          onChange={(e) => {
            setForm({ name: e.target.value });
            setNameError(null);
          }}
        />
        <FieldError id="lab-disk-name-error" text={nameError} />
      </div>
      <div className="field-row">
        <div className="field">
          <label htmlFor="lab-disk-size">Size</label>
          <input
            id="lab-disk-size"
            data-testid="lab-disk-size"
            inputMode="decimal"
            value={size}
            aria-invalid={sizeError !== null || undefined}
            aria-describedby={sizeError !== null ? 'lab-disk-size-error' : undefined}
            onChange={(e) => {
              setForm({ size: e.target.value });
              setSizeError(null);
            }}
          />
          <FieldError id="lab-disk-size-error" text={sizeError} />
        </div>
        <div className="field">
          <label htmlFor="lab-disk-unit">Unit</label>
          <select id="lab-disk-unit" data-testid="lab-disk-unit" value={unit} onChange={(e) => setForm({ unit: e.target.value as Unit })}>
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
