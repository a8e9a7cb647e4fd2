import { useCallback, useEffect, useMemo, useState } from 'react';
import type { KeyboardEvent } from 'react';
import { escapeControlChars } from '../../../../app/shared/control-chars.js';
import { formatBytes } from '../../../../app/shared/format.js';
import { ErrorText } from '../../components/ErrorText.js';
import { useDarkMode } from '../../hooks/use-dark-mode.js';
import { usePolling } from '../../hooks/use-polling.js';
import { useApp, useAppStoreApi } from '../../store/context.js';
import { parseSinceN, presentNumbers } from './present-numbers.js';
import { MAX_ZOOM, effectiveSinceN, effectiveView, liveSupported, newestNumber } from '../../store/heatmap-slice.js';
import { countChangedSince, predictedIncrementBytes, viewWindow } from './aggregate.js';
import { HeatmapCanvas } from './HeatmapCanvas.js';
import { Legend } from './Legend.js';
import { ActionButton } from '../../components/ActionButton.js';

export function HeatmapScreen() {
  const devices = useApp((s) => s.devices);
  const device = useApp((s) => s.heatmapDevice);
  const setDevice = useApp((s) => s.setHeatmapDevice);
  const heatmap = useApp((s) => s.heatmap);
  const error = useApp((s) => s.heatmapError);
  const sinceMode = useApp((s) => s.sinceMode);
  const setSinceMode = useApp((s) => s.setSinceMode);
  const sinceNChoice = useApp((s) => s.sinceN);
  const setSinceN = useApp((s) => s.setSinceN);
  const zoom = useApp((s) => s.zoom);
  const setZoom = useApp((s) => s.setZoom);
  const viewStart = useApp((s) => s.viewStart);
  const setViewStart = useApp((s) => s.setViewStart);
  const load = useApp((s) => s.loadHeatmap);
  const chosenView = useApp((s) => s.heatmapView);
  const setView = useApp((s) => s.setHeatmapView);
  const canLive = useApp((s) => liveSupported(s.status));
  const dark = useDarkMode();
  const store = useAppStoreApi();
  /**
   * What the user typed in the N field and the choice it made: shown while that choice
   * stands (an emptied field must not snap back to the default as the user types);
   * a reset of N (new view, device or generation) or leaving the field shows the N in use.
   */
  const [typed, setTyped] = useState<{ text: string; choice: number | null } | null>(null);
  const view = effectiveView(chosenView, canLive);

  // Default to the first tracked device (or the first device).
  useEffect(() => {
    if (device !== null && devices.some((d) => d.id === device)) return;
    const first = devices.find((d) => d.tracked) ?? devices[0];
    setDevice(first?.id ?? null);
  }, [device, devices, setDevice]);

  usePolling(useCallback(() => load(), [load]), 1000, device !== null);
  // The partitions drawn come with the device list: a table written meanwhile shows up.
  const refreshDevices = useApp((s) => s.refreshDevices);
  usePolling(useCallback(() => refreshDevices(), [refreshDevices]), 5000);

  const info = heatmap?.info ?? null;
  const sinceN = effectiveSinceN(sinceNChoice, heatmap);
  const live = heatmap?.table === 'active';
  const newest = heatmap ? newestNumber(heatmap) : 0;
  const present = useMemo(() => (heatmap ? presentNumbers(heatmap.map) : []), [heatmap]);
  const [sinceError, setSinceError] = useState<string | null>(null);
  const blockCount = heatmap?.map.length ?? 0;
  const win = viewWindow(blockCount, zoom, viewStart);
  const visible = win.end - win.start;
  const changed = useMemo(() => (heatmap ? countChangedSince(heatmap.map, sinceN) : 0), [heatmap, sinceN]);
  const predicted = useMemo(
    () => (heatmap ? predictedIncrementBytes(heatmap.map, sinceN, heatmap.info.blockSize, heatmap.info.capacityBytes) : 0),
    [heatmap, sinceN],
  );

  function zoomTo(z: number) {
    const next = Math.max(1, Math.min(MAX_ZOOM, z));
    // Keep the centre of the view in place.
    const centre = win.start + visible / 2;
    const nextVisible = Math.ceil(blockCount / next);
    setZoom(next);
    setViewStart(Math.max(0, centre - nextVisible / 2));
  }

  function onKey(e: KeyboardEvent<HTMLCanvasElement>) {
    const step = Math.max(1, Math.floor(visible / 4));
    if (e.key === '+' || e.key === '=') zoomTo(zoom * 2);
    else if (e.key === '-') zoomTo(zoom / 2);
    else if (e.key === 'ArrowRight' || e.key === 'ArrowDown') setViewStart(Math.min(blockCount - visible, win.start + step));
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') setViewStart(Math.max(0, win.start - step));
    else return;
    e.preventDefault();
  }

  return (
    <section aria-labelledby="screen-title">
      <h2 id="screen-title">CBT heatmap</h2>
      <fieldset className="view-choice" data-testid="heatmap-view" data-view={view}>
        <legend>View</legend>
        <label>
          <input
            type="radio"
            name="heatmap-view"
            value="live"
            data-testid="heatmap-view-live"
            checked={view === 'live'}
            disabled={!canLive}
            onChange={() => setView('live')}
          />
          Live (writes as they happen)
        </label>
        <label>
          <input
            type="radio"
            name="heatmap-view"
            value="snapshot"
            data-testid="heatmap-view-snapshot"
            checked={view === 'snapshot'}
            onChange={() => setView('snapshot')}
          />
          Last snapshot (the map as of the last take)
        </label>
        {canLive ? null : <span className="muted">Live needs the embedded engine; the kernel module only gives the map of the last snapshot.</span>}
      </fieldset>
      <div className="toolbar">
        <div className="field">
          <label htmlFor="heatmap-device">Device</label>
          <select
            id="heatmap-device"
            data-testid="heatmap-device"
            value={device ?? ''}
            onChange={(e) => setDevice(e.target.value || null)}
          >
            {devices.length === 0 ? <option value="">(no device)</option> : null}
            {devices.map((d) => (
              <option key={d.id} value={d.id}>
                {escapeControlChars(d.name)}
                {d.tracked ? '' : ' (not tracked)'}
              </option>
            ))}
          </select>
        </div>
        <div className="field checkbox-field">
          <input
            id="heatmap-since"
            type="checkbox"
            data-testid="heatmap-since-mode"
            checked={sinceMode}
            onChange={(e) => setSinceMode(e.target.checked)}
          />
          <label htmlFor="heatmap-since">Changed since snapshot N</label>
        </div>
        <div className="field">
          <label htmlFor="heatmap-since-n">N (change number)</label>
          <input
            id="heatmap-since-n"
            data-testid="heatmap-since-n"
            type="number"
            min="0"
            max="255"
            value={typed !== null && typed.choice === sinceNChoice ? typed.text : String(sinceN)}
            aria-invalid={sinceError !== null || undefined}
            aria-describedby={sinceError !== null ? 'heatmap-since-n-error' : undefined}
            onChange={(e) => {
              const text = e.target.value;
              const parsed = text === '' ? null : parseSinceN(text, present);
              if (parsed !== null && 'error' in parsed) {
                setSinceError(parsed.error);
              } else {
                setSinceError(null);
                setSinceN(parsed === null ? null : parsed.value);
              }
              setTyped({ text, choice: store.getState().sinceN });
            }}
            onBlur={() => {
              if (sinceError === null) setTyped(null);
            }}
          />
          {sinceError !== null ? (
            <p id="heatmap-since-n-error" className="error-text small-text" data-testid="heatmap-since-n-error" role="alert">
              {sinceError}
            </p>
          ) : null}
        </div>
        <div className="button-row" role="group" aria-label="Zoom">
          <ActionButton type="button" onClick={() => zoomTo(zoom * 2)} disabled={zoom >= MAX_ZOOM} data-testid="zoom-in">
            Zoom in
          </ActionButton>
          <ActionButton type="button" onClick={() => zoomTo(zoom / 2)} disabled={zoom <= 1} data-testid="zoom-out">
            Zoom out
          </ActionButton>
          <span className="muted" data-testid="zoom-level">
            ×{zoom}
          </span>
        </div>
      </div>
      {zoom > 1 && blockCount > visible ? (
        <div className="field">
          <label htmlFor="heatmap-position">View position (first block)</label>
          <input
            id="heatmap-position"
            type="range"
            min={0}
            max={blockCount - visible}
            value={win.start}
            onChange={(e) => setViewStart(Number(e.target.value))}
          />
        </div>
      ) : null}
      <ErrorText error={error} testId="heatmap-error" />
      {heatmap === null || info === null ? (
        <p className="muted" aria-live="polite">
          {device === null ? 'No device to show.' : error === null ? 'Loading the CBT map…' : ''}
        </p>
      ) : (
        <>
          <dl className="facts">
            <dt>Generation id</dt>
            <dd>
              <code data-testid="generation-id">{info.generationId}</code>
            </dd>
            <dt>Change number of the last snapshot</dt>
            <dd data-testid="changes-number">{info.changesNumber}</dd>
            {live ? (
              <>
                <dt>Active change number (writes since the last snapshot)</dt>
                <dd data-testid="active-number">{heatmap.activeNumber}</dd>
              </>
            ) : null}
            <dt>Tracking blocks</dt>
            <dd>
              {info.blockCount.toLocaleString('en-US')} × {formatBytes(info.blockSize)}
            </dd>
            <dt>Showing</dt>
            <dd>
              blocks {win.start.toLocaleString('en-US')}–{(win.end - 1).toLocaleString('en-US')}
            </dd>
          </dl>
          <p>
            {live ? 'Predicted size of an incremental backup taken now, ' : 'Predicted size of an incremental backup, '}
            changed since snapshot {sinceN}, as the backup counts it:{' '}
            <output data-testid="predicted-size" data-bytes={predicted}>
              {formatBytes(predicted)}
            </output>{' '}
            <span className="muted">
              ({changed.toLocaleString('en-US')} changed tracking blocks × {formatBytes(info.blockSize)}, at most the device size)
            </span>
          </p>
          <HeatmapCanvas
            info={info}
            map={heatmap.map}
            start={win.start}
            end={win.end}
            newest={newest}
            sinceN={sinceMode ? sinceN : null}
            countSince={sinceN}
            partitions={devices.find((d) => d.id === device)?.partitions ?? []}
            dark={dark}
            onKey={onKey}
          />
          <Legend newest={newest} live={live} sinceN={sinceMode ? sinceN : null} dark={dark} present={present} />
        </>
      )}
    </section>
  );
}
