import { useState } from 'react';
import type { FormEvent } from 'react';
import { escapeControlChars } from '../../../../app/shared/control-chars.js';
import type { ContractError } from '../../../../app/shared/result.js';
import type { WorkloadPattern } from '../../../../app/shared/types.js';
import { ErrorText } from '../../components/ErrorText.js';
import { FieldError } from '../../components/FieldError.js';
import { MAX_RATE_MIBPS, parseAmount } from '../../components/field-checks.js';
import { useApp } from '../../store/context.js';
import { ActionButton } from '../../components/ActionButton.js';

const PATTERNS: { value: WorkloadPattern; label: string }[] = [
  { value: 'random', label: 'Random' },
  { value: 'sequential', label: 'Sequential' },
  { value: 'hotspot', label: 'Hot spot' },
];

function WorkloadProgressLine({ device }: { device: string }) {
  const view = useApp((s) => s.workloads[device]);
  if (view === undefined) return <p className="muted" data-testid="workload-progress">No workload has run on {device}.</p>;
  return (
    <p data-testid="workload-progress" aria-live="polite">
      {view.running ? 'Running' : 'Stopped'}: {view.writtenMiB} MiB written in {view.elapsedS} s at {view.actualMiBps} MiB/s
      (target {view.rateMiBps} MiB/s, {view.pattern}).
      {view.error ? <span className="error-text"> {view.error}</span> : null}
    </p>
  );
}

export function WorkloadPanel() {
  const devices = useApp((s) => s.devices);
  const startWorkload = useApp((s) => s.startWorkload);
  const stopWorkload = useApp((s) => s.stopWorkload);
  // the workload overwrites data: only lab disks the helper created are offered
  const engineDevices = devices.filter((d) => d.kind === 'engine' && d.labDisk);
  const form = useApp((s) => s.workloadForm);
  const setForm = useApp((s) => s.setWorkloadForm);
  const { device: chosen, rate, pattern } = form;
  const [error, setError] = useState<ContractError | null>(null);
  const [rateError, setRateError] = useState<string | null>(null);
  const device = engineDevices.some((d) => d.id === chosen) ? chosen : (engineDevices[0]?.id ?? '');
  const running = useApp((s) => (device ? (s.workloads[device]?.running ?? false) : false));

  async function start(e: FormEvent) {
    e.preventDefault();
    if (!device) {
      setError({ code: 'EINVAL', message: 'Create a lab disk first.' });
      return;
    }
    const rateMiBps = parseAmount(rate, 'the rate', 'MiB/s', MAX_RATE_MIBPS);
    setRateError('error' in rateMiBps ? rateMiBps.error : null);
    if ('error' in rateMiBps) return;
    setError(await startWorkload(device, rateMiBps.value, pattern));
  }

  async function stop() {
    if (device) setError(await stopWorkload(device));
  }

  return (
    <form className="panel" aria-labelledby="workload-title" onSubmit={(e) => void start(e)} noValidate>
      <h3 id="workload-title">Write workload</h3>
      <p className="muted">Writes to a lab disk to watch tracking and copy-on-write at work.</p>
      <p className="warning" data-testid="workload-warning">
        <strong>Overwrites data:</strong> the workload writes test patterns over the disk&apos;s content. It runs only on lab
        disks created here, never on an image or block device you added.
      </p>
      <div className="field">
        <label htmlFor="workload-device">Device</label>
        <select id="workload-device" data-testid="workload-device" value={device} onChange={(e) => setForm({ device: e.target.value })}>
          {engineDevices.length === 0 ? <option value="">(no lab disk)</option> : null}
          {engineDevices.map((d) => (
            <option key={d.id} value={d.id}>
              {escapeControlChars(d.name)}
            </option>
          ))}
        </select>
      </div>
      <div className="field-row">
        <div className="field">
          <label htmlFor="workload-rate">Rate (MiB/s)</label>
          <input
            id="workload-rate"
            data-testid="workload-rate"
            inputMode="decimal"
            value={rate}
            aria-invalid={rateError !== null || undefined}
            aria-describedby={rateError !== null ? 'workload-rate-error' : undefined}
            onChange={(e) => {
              setForm({ rate: e.target.value });
              setRateError(null);
            }}
          />
          <FieldError id="workload-rate-error" text={rateError} />
        </div>
        <div className="field">
          <label htmlFor="workload-pattern">Pattern</label>
          <select
            id="workload-pattern"
            data-testid="workload-pattern"
            value={pattern}
            onChange={(e) => setForm({ pattern: e.target.value as WorkloadPattern })}
          >
            {PATTERNS.map((p) => (
              <option key={p.value} value={p.value}>
                {p.label}
              </option>
            ))}
          </select>
        </div>
      </div>
      <div className="button-row">
        <ActionButton type="submit" data-testid="start-workload" disabled={!device || running}>
          Start workload
        </ActionButton>
        <ActionButton type="button" data-testid="stop-workload" disabled={!device || !running} onClick={() => void stop()}>
          Stop workload
        </ActionButton>
      </div>
      {device ? <WorkloadProgressLine device={device} /> : null}
      <ErrorText error={error} />
    </form>
  );
}
