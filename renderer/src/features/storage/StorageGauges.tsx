import { formatBytes } from '../../../../app/shared/format.js';
import type { SnapshotEntry, StorageGauge } from '../../../../app/shared/types.js';
import { Breakable } from '../../components/Breakable.js';
import { STORAGE_GROW } from '../../../../app/shared/cbt.js';
import { useApp } from '../../store/context.js';
import { GAUGE_WARN_SHARE, gaugeFill } from './storage-advice.js';
import { durationText, forecast } from './forecast.js';
import type { StorageSample } from './forecast.js';
import { ActionButton } from '../../components/ActionButton.js';

const NO_SAMPLES: StorageSample[] = [];

/** The fill rate and the time until the limit at that rate, for a held snapshot. */
export function ForecastLine({ samples, limitBytes }: { samples: readonly StorageSample[]; limitBytes: number }) {
  const f = forecast(samples, limitBytes);
  if (f.level === 'full') return null;
  const text =
    f.rateBytesPerS === null
      ? 'Forecast: measuring the fill rate…'
      : f.secondsToLimit === null
        ? 'Forecast: not filling now (0 B/s).'
        : `Forecast: filling at ${formatBytes(Math.round(f.rateBytesPerS))}/s; the limit is reached in about ${durationText(f.secondsToLimit)} at this rate.`;
  return (
    <p className={f.level === 'warn' ? 'warning' : 'muted small-text'} data-testid="storage-forecast" data-level={f.level} aria-live="polite">
      {text}
      {f.level === 'warn' ? ' Grow the storage, stop the writes or destroy the snapshot before then.' : null}
    </p>
  );
}

/** Grows a held snapshot's storage by its current limit (doubling it), where the driver allows it. */
export function GrowButton({ snapshotId, limitBytes }: { snapshotId: string; limitBytes: number }) {
  const canGrow = useApp((s) => s.status?.capabilities.includes(STORAGE_GROW) ?? false);
  const grow = useApp((s) => s.growStorage);
  const busy = useApp((s) => s.snapshotBusy !== null);
  if (!canGrow || limitBytes <= 0) return null;
  return (
    <ActionButton type="button" className="small" data-testid="grow-storage" disabled={busy} onClick={() => void grow(snapshotId, limitBytes)}>
      Grow by {formatBytes(limitBytes)} (to {formatBytes(2 * limitBytes)})
    </ActionButton>
  );
}

export function Gauge({
  snapshotId,
  gauge,
  failed = false,
  samples = NO_SAMPLES,
}: {
  snapshotId: string;
  gauge: StorageGauge;
  failed?: boolean;
  samples?: readonly StorageSample[];
}) {
  const fill = gaugeFill(gauge);
  const warn = fill >= GAUGE_WARN_SHARE;
  const full = fill >= 1;
  const value = gauge.usedBytes ?? gauge.allocatedBytes;
  const labelId = `gauge-${snapshotId}`;
  return (
    <div className={`gauge${warn ? ' gauge-warn' : ''}`} data-testid="storage-gauge" data-snapshot-id={snapshotId}>
      <span id={labelId} className="gauge-label">
        Storage of snapshot {snapshotId.slice(0, 8)}
      </span>
      <meter
        aria-labelledby={labelId}
        min={0}
        max={gauge.limitBytes || 1}
        low={gauge.limitBytes * 0.6}
        high={gauge.limitBytes * GAUGE_WARN_SHARE}
        optimum={0}
        value={value}
      />
      <span className="gauge-text">
        used {gauge.usedBytes === null ? 'n/a' : formatBytes(gauge.usedBytes)} / allocated {formatBytes(gauge.allocatedBytes)} /
        limit {formatBytes(gauge.limitBytes)}
      </span>
      {full ? (
        <span className="warning" data-testid="gauge-full">
          {failed
            ? 'Full: the limit was reached and the snapshot failed.'
            : 'Full: the next copy-on-write will fail the snapshot.'}
        </span>
      ) : warn ? (
        <span className="warning">Nearly full: the snapshot will fail when the limit is reached.</span>
      ) : null}
      {failed ? null : <ForecastLine samples={samples} limitBytes={gauge.limitBytes} />}
      {failed ? null : <GrowButton snapshotId={snapshotId} limitBytes={gauge.limitBytes} />}
      <div className="muted small-text path gauge-path">
        <Breakable text={gauge.path} />
      </div>
    </div>
  );
}

export function StorageGauges() {
  const snapshots = useApp((s) => s.snapshots);
  const samples = useApp((s) => s.storageSamples);
  const withStorage = snapshots.filter((s): s is SnapshotEntry & { storage: StorageGauge } => s.storage !== null);
  if (withStorage.length === 0) return <p className="muted">No snapshot holds difference storage yet: the file is created with the snapshot.</p>;
  return (
    <div className="gauges">
      {withStorage.map((s) => (
        <Gauge key={s.id} snapshotId={s.id} gauge={s.storage} failed={s.state === 'failed'} samples={samples[s.id]} />
      ))}
    </div>
  );
}
