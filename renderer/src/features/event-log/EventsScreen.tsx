import { useMemo } from 'react';
import { errnoLabel } from '../../../../app/shared/format.js';
import { useApp } from '../../store/context.js';
import type { EventRecord } from '../../store/events-slice.js';

const CODE_LABELS: Record<EventRecord['code'], string> = {
  corrupted: 'Corrupted',
  low_free_space: 'Low free space',
  no_space: 'No space',
};

function time(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function EventRow({ event }: { event: EventRecord }) {
  const device = event.code === 'corrupted' ? event.device : '—';
  const error = event.code === 'corrupted' ? `${event.errCode} ${errnoLabel(event.errCode)}` : '—';
  const detail =
    event.code === 'corrupted'
      ? `device ${event.devMajor}:${event.devMinor}`
      : `${event.requestedSectors} sectors requested (${(event.requestedSectors * 512) / (1024 * 1024)} MiB)`;
  return (
    <tr data-testid="event-row" data-code={event.code} className={event.code === 'low_free_space' ? undefined : 'row-alert'}>
      <td>
        <time dateTime={new Date(event.timeMs).toISOString()}>{time(event.timeMs)}</time>
      </td>
      <td data-testid="event-code">{CODE_LABELS[event.code]}</td>
      <td>{device}</td>
      <td>{error}</td>
      <td className="muted">{detail}</td>
    </tr>
  );
}

/** The timeline per snapshot, newest first. Events are collected by the store whatever screen is open. */
export function EventsScreen() {
  const events = useApp((s) => s.events);
  const clear = useApp((s) => s.clearEvents);
  const groups = useMemo(() => {
    const bySnapshot = new Map<string, EventRecord[]>();
    for (let i = events.length - 1; i >= 0; i--) {
      const e = events[i] as EventRecord;
      const list = bySnapshot.get(e.snapshotId);
      if (list) list.push(e);
      else bySnapshot.set(e.snapshotId, [e]);
    }
    return [...bySnapshot.entries()];
  }, [events]);

  return (
    <section aria-labelledby="screen-title">
      <h2 id="screen-title">Events</h2>
      <p className="muted">
        Events of every snapshot, collected while the application runs, whichever screen is open.{' '}
        <button type="button" className="small" onClick={clear} disabled={events.length === 0}>
          Clear the timeline
        </button>
      </p>
      {groups.length === 0 ? <p className="muted">No events yet.</p> : null}
      {groups.map(([snapshotId, list]) => (
        <section key={snapshotId} className="card" aria-labelledby={`events-${snapshotId}`} data-testid="event-group">
          <h3 id={`events-${snapshotId}`}>
            Snapshot <code>{snapshotId}</code> <span className="muted">({list.length})</span>
          </h3>
          <table>
            <caption className="visually-hidden">Events of snapshot {snapshotId}, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Code</th>
                <th scope="col">Device</th>
                <th scope="col">Error</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {list.map((e) => (
                <EventRow key={e.seq} event={e} />
              ))}
            </tbody>
          </table>
        </section>
      ))}
    </section>
  );
}
