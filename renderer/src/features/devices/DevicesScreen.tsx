import { useCallback } from 'react';
import { formatBytes } from '../../../../app/shared/format.js';
import type { DeviceEntry } from '../../../../app/shared/types.js';
import { CopyButton } from '../../components/CopyButton.js';
import { ErrorText } from '../../components/ErrorText.js';
import { usePolling } from '../../hooks/use-polling.js';
import { useApp } from '../../store/context.js';
import { EnginePanel } from './EnginePanel.js';

function stateText(d: DeviceEntry): string {
  if (d.snapshotId !== null) return 'In snapshot';
  return d.tracked ? 'Tracked' : 'Not tracked';
}

function DeviceRow({ device }: { device: DeviceEntry }) {
  const selected = useApp((s) => s.selectedDevices.includes(device.id));
  const toggle = useApp((s) => s.toggleDevice);
  const removeImage = useApp((s) => s.removeImage);
  const checkboxId = `select-${device.id}`;
  return (
    <tr data-testid="device-row" data-device-id={device.id} aria-selected={selected}>
      <td>
        <input
          id={checkboxId}
          type="checkbox"
          checked={selected}
          onChange={() => toggle(device.id)}
          aria-label={`Select ${device.name}`}
        />
      </td>
      <th scope="row">
        <label htmlFor={checkboxId}>{device.name}</label>
        <div className="muted small-text">{device.path}</div>
      </th>
      <td className="num">{formatBytes(device.sizeBytes)}</td>
      <td>{device.model || '—'}</td>
      <td>{device.fstype || '—'}</td>
      <td>{device.mountpoints.length > 0 ? device.mountpoints.join(', ') : '—'}</td>
      <td>
        <span className={`state state-${device.snapshotId !== null ? 'snapshot' : device.tracked ? 'tracked' : 'idle'}`} data-testid="device-state">
          {stateText(device)}
        </span>
      </td>
      <td>
        {device.nbdUri !== null ? (
          <>
            <code data-testid="device-nbd-uri">{device.nbdUri}</code>{' '}
            <CopyButton text={device.nbdUri} label={`Copy NBD URI of ${device.name}`} testId="copy-nbd-uri" />
          </>
        ) : (
          '—'
        )}
      </td>
      <td>
        {device.kind === 'engine' ? (
          <button
            type="button"
            className="small"
            aria-label={`Remove ${device.name}`}
            disabled={device.snapshotId !== null}
            onClick={() => void removeImage(device.id)}
          >
            Remove
          </button>
        ) : null}
      </td>
    </tr>
  );
}

export function DevicesScreen() {
  const devices = useApp((s) => s.devices);
  const loaded = useApp((s) => s.devicesLoaded);
  const error = useApp((s) => s.devicesError);
  const selectedCount = useApp((s) => s.selectedDevices.length);
  const setSelected = useApp((s) => s.setSelectedDevices);
  const refresh = useApp((s) => s.refreshDevices);
  const driver = useApp((s) => s.status?.driver ?? null);
  usePolling(useCallback(() => refresh(), [refresh]), 2000);

  const allSelected = devices.length > 0 && selectedCount === devices.length;
  const showEngine = driver === 'embedded' || devices.some((d) => d.kind === 'engine');

  return (
    <section aria-labelledby="screen-title">
      <h2 id="screen-title">Devices</h2>
      <p className="muted">
        Tick the devices to snapshot together. {selectedCount} of {devices.length} selected.
      </p>
      <ErrorText error={error} testId="devices-error" />
      <div className="table-wrap">
        <table data-testid="devices-table">
          <caption className="visually-hidden">Devices that can be snapshotted</caption>
          <thead>
            <tr>
              <th scope="col">
                <input
                  type="checkbox"
                  aria-label="Select all devices"
                  checked={allSelected}
                  onChange={() => setSelected(allSelected ? [] : devices.map((d) => d.id))}
                />
              </th>
              <th scope="col">Device</th>
              <th scope="col">Size</th>
              <th scope="col">Model</th>
              <th scope="col">Filesystem</th>
              <th scope="col">Mount points</th>
              <th scope="col">State</th>
              <th scope="col">NBD URI</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {devices.map((d) => (
              <DeviceRow key={d.id} device={d} />
            ))}
            {loaded && devices.length === 0 ? (
              <tr>
                <td colSpan={9} className="muted">
                  No devices. {showEngine || driver === null ? 'Create a lab disk or add an image below.' : ''}
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      {showEngine || driver === null ? <EnginePanel /> : null}
    </section>
  );
}
