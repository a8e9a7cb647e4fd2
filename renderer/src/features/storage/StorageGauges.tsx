import { formatBytes } from '../../../../app/shared/format.js';
import type { SnapshotEntry, StorageGauge } from '../../../../app/shared/types.js';
import { Breakable } from '../../components/Breakable.js';
import { useApp } from '../../store/context.js';
import { GAUGE_WARN_SHARE, gaugeFill } from './storage-advice.js';

export function Gauge({ snapshotId, gauge, failed = false }: { snapshotId: string; gauge: StorageGauge; failed?: boolean }) {
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
      <div className="muted small-text path gauge-path">
        <Breakable text={gauge.path} />
      </div>
    </div>
  );
}

export function StorageGauges() {
  const snapshots = useApp((s) => s.snapshots);
  const withStorage = snapshots.filter((s): s is SnapshotEntry & { storage: StorageGauge } => s.storage !== null);
  if (withStorage.length === 0) return <p className="muted">No snapshot holds difference storage yet: the file is created with the snapshot.</p>;
  return (
    <div className="gauges">
      {withStorage.map((s) => (
        <Gauge key={s.id} snapshotId={s.id} gauge={s.storage} failed={s.state === 'failed'} />
      ))}
    </div>
  );
}
