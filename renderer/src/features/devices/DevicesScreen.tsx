import { useCallback, useMemo, useState } from 'react';
import { escapeControlChars } from '../../../../app/shared/control-chars.js';
import { formatBytes } from '../../../../app/shared/format.js';
import type { DeviceEntry, DriverKind } from '../../../../app/shared/types.js';
import { Breakable } from '../../components/Breakable.js';
import { ErrorText } from '../../components/ErrorText.js';
import { StaleNote } from '../../components/StaleNote.js';
import { UriWithCopy } from '../../components/UriWithCopy.js';
import { usePolling } from '../../hooks/use-polling.js';
import { useApp } from '../../store/context.js';
import { GettingStarted } from '../onboarding/GettingStarted.js';
import { EnginePanel } from './EnginePanel.js';
import { deviceGroups } from './device-tree.js';
import type { TreeRow } from './device-tree.js';
import { deviceDetails, selectability, selectableIds, visibleDevices } from './selectable.js';
import { ActionButton } from '../../components/ActionButton.js';

/** After a row went away: focus the checkbox of the engine device on `path` once rendered, else the screen itself. */
function focusAfterRowChange(path: string | null): void {
  requestAnimationFrame(() => {
    const row = Array.from(document.querySelectorAll('tr[data-kind="engine"]')).find((tr) => tr.getAttribute('data-path') === path);
    const target = row?.querySelector<HTMLElement>('input[type="checkbox"]') ?? document.getElementById('main');
    target?.focus();
  });
}

function stateText(d: DeviceEntry): string {
  if (d.snapshotId !== null) return 'In snapshot';
  return d.tracked ? 'Tracked' : 'Not tracked';
}

/** A block device the engine cannot snapshot directly: open it as an engine device (addImage on its path). */
function OpenWithEngine({ device }: { device: DeviceEntry }) {
  const addImage = useApp((s) => s.addImage);
  const [busy, setBusy] = useState(false);
  return (
    <ActionButton
      type="button"
      className="small"
      data-testid="open-with-engine"
      aria-label={`Open ${escapeControlChars(device.name)} with the engine`}
      disabled={busy}
      onClick={() => {
        setBusy(true);
        void addImage(device.path).then((error) => {
          setBusy(false);
          // This row gives way to the engine device's: move the focus to its checkbox.
          if (error === null) focusAfterRowChange(device.path);
        });
      }}
    >
      {busy ? 'Opening…' : 'Open with the engine'}
    </ActionButton>
  );
}

function DeviceRow({ device, driver, depth = 0, alsoOn = [], hidden = false }: { device: DeviceEntry; driver: DriverKind | null; depth?: number; alsoOn?: string[]; hidden?: boolean }) {
  const selected = useApp((s) => s.selectedDevices.includes(device.id));
  const toggle = useApp((s) => s.toggleDevice);
  const removeImage = useApp((s) => s.removeImage);
  const checkboxId = `select-${device.id}`;
  const noteId = `note-${device.id}`;
  const can = selectability(device, driver);
  const details = deviceDetails(device);
  return (
    <tr
      data-testid="device-row"
      data-device-id={device.id}
      data-kind={device.kind}
      data-path={device.path}
      data-selectable={can.selectable}
      data-depth={depth}
      aria-selected={selected}
      className={can.selectable ? undefined : 'row-unavailable'}
      hidden={hidden}
    >
      <td>
        <input
          id={checkboxId}
          type="checkbox"
          checked={selected && can.selectable}
          disabled={!can.selectable}
          onChange={() => toggle(device.id)}
          aria-label={`Select ${escapeControlChars(device.name)}`}
          aria-describedby={can.selectable ? undefined : noteId}
        />
      </td>
      <th scope="row" className={depth > 0 ? 'tree-child' : undefined} style={depth > 0 ? { paddingLeft: `${0.5 + depth * 1.25}rem` } : undefined}>
        {depth > 0 ? (
          <span className="tree-branch" aria-hidden="true">
            └{' '}
          </span>
        ) : null}
        <label htmlFor={checkboxId}>{escapeControlChars(device.name)}</label>
        {device.label ? (
          <span className="muted small-text" data-testid="device-label">
            {' '}
            “{escapeControlChars(device.label)}”
          </span>
        ) : null}
        <div className="muted small-text path">
          <Breakable text={device.path} />
        </div>
        {device.kind === 'engine' && device.path.startsWith('/dev/') ? (
          <div className="muted small-text" data-testid="device-note">
            Block device opened with the engine.
          </div>
        ) : null}
        {alsoOn.length > 0 ? (
          <div className="muted small-text" data-testid="device-also-on">
            Also on {escapeControlChars(alsoOn.join(', '))}
          </div>
        ) : null}
        {can.selectable ? null : (
          <div id={noteId} className="muted small-text" data-testid="device-note">
            {can.text}
          </div>
        )}
        {device.bypass.length > 0 ? (
          <div className="warning small-text" data-testid="device-bypass">
            Writes that bypass the engine: {escapeControlChars(device.bypass.join('; '))}. A snapshot would miss them.
          </div>
        ) : null}
      </th>
      <td className="num">{formatBytes(device.sizeBytes)}</td>
      <td className="small-text">{details || '—'}</td>
      <td>
        <span className={`state state-${device.snapshotId !== null ? 'snapshot' : device.tracked ? 'tracked' : 'idle'}`} data-testid="device-state">
          {stateText(device)}
        </span>
      </td>
      <td className="uri-cell">
        {device.nbdUri !== null ? (
          <UriWithCopy uri={device.nbdUri} label={`Copy NBD URI of ${escapeControlChars(device.name)}`} testId="device-nbd-uri" copyTestId="copy-nbd-uri" />
        ) : (
          '—'
        )}
      </td>
      <td>
        {device.kind === 'engine' ? (
          <button
            type="button"
            className="small"
            aria-label={`Remove ${escapeControlChars(device.name)}`}
            title={device.snapshotId !== null ? 'In a snapshot: destroy the snapshot first.' : 'Close the device (the image file is kept).'}
            disabled={device.snapshotId !== null}
            onClick={() =>
              void removeImage(device.id).then((error) => {
                if (error === null) focusAfterRowChange(null);
              })
            }
          >
            Remove
          </button>
        ) : can.selectable === false && can.reason === 'needs-engine' ? (
          <OpenWithEngine device={device} />
        ) : null}
      </td>
    </tr>
  );
}

/** Disks of which nothing can be used: one line with the reason, expandable to the devices. */
function CollapsedGroup({ summary, rows, driver }: { summary: string; rows: TreeRow[]; driver: DriverKind | null }) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <tr data-testid="device-group" className="row-unavailable">
        <td />
        <td colSpan={6}>
          <button type="button" className="link" aria-expanded={open} data-testid="device-group-toggle" onClick={() => setOpen(!open)}>
            <span aria-hidden="true">{open ? '▾' : '▸'} </span>
            {escapeControlChars(summary)}
          </button>
        </td>
      </tr>
      {rows.map((r) => (
        <DeviceRow key={r.device.id} device={r.device} driver={driver} depth={r.depth + 1} alsoOn={r.alsoOn} hidden={!open} />
      ))}
    </>
  );
}

/** No engine device yet on the embedded engine: say what to do first. */
function NoLabDiskYet() {
  return (
    <div className="callout" data-testid="devices-empty">
      <strong>No lab disk yet.</strong> Create one below to try snapshots safely: a sparse image file that takes no space
      until it is written. Or add an existing image, or open a block device with the engine.{' '}
      <button type="button" className="link" onClick={() => document.getElementById('lab-disk-name')?.focus()}>
        Go to the lab disk form
      </button>
    </div>
  );
}

export function DevicesScreen() {
  const devices = useApp((s) => s.devices);
  const loaded = useApp((s) => s.devicesLoaded);
  const error = useApp((s) => s.devicesError);
  const selectedIds = useApp((s) => s.selectedDevices);
  const setSelected = useApp((s) => s.setSelectedDevices);
  const refresh = useApp((s) => s.refreshDevices);
  const driver = useApp((s) => s.status?.driver ?? null);
  usePolling(useCallback(() => refresh(), [refresh]), 2000);

  const selectable = selectableIds(devices, driver);
  const selectedCount = selectedIds.filter((id) => selectable.includes(id)).length;
  const allSelected = selectable.length > 0 && selectedCount === selectable.length;
  const showEngine = driver === 'embedded' || devices.some((d) => d.kind === 'engine');
  // A block device the engine fronts is listed once, as its engine device.
  const groups = useMemo(() => deviceGroups(visibleDevices(devices), driver), [devices, driver]);
  const noEngineDevice = loaded && driver === 'embedded' && !devices.some((d) => d.kind === 'engine');

  return (
    <section aria-labelledby="screen-title">
      <h2 id="screen-title">Devices</h2>
      <StaleNote />
      <GettingStarted />
      <p className="muted" data-testid="selection-summary">
        {selectable.length === 0
          ? 'No device can be snapshotted yet.'
          : `Tick the devices to snapshot together: ${selectedCount} of ${selectable.length} selected.`}
      </p>
      <ErrorText error={error} testId="devices-error" />
      {noEngineDevice ? <NoLabDiskYet /> : null}
      <div className="table-wrap">
        <table data-testid="devices-table" className="devices-table">
          <caption className="visually-hidden">Devices that can be snapshotted</caption>
          <thead>
            <tr>
              <th scope="col">
                <input
                  type="checkbox"
                  aria-label="Select all devices"
                  checked={allSelected}
                  disabled={selectable.length === 0}
                  onChange={() => setSelected(allSelected ? [] : selectable)}
                />
              </th>
              <th scope="col">Device</th>
              <th scope="col">Size</th>
              <th scope="col">Details</th>
              <th scope="col">State</th>
              <th scope="col">NBD URI</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {groups.map((g) =>
              g.kind === 'collapsed' ? (
                <CollapsedGroup key={g.key} summary={g.summary} rows={g.rows} driver={driver} />
              ) : (
                g.rows.map((r) => <DeviceRow key={r.device.id} device={r.device} driver={driver} depth={r.depth} alsoOn={r.alsoOn} />)
              ),
            )}
            {loaded && devices.length === 0 ? (
              <tr>
                <td colSpan={7} className="muted">
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
