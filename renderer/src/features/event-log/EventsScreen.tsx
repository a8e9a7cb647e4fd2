import { useMemo } from 'react';
import { escapeControlChars } from '../../../../app/shared/control-chars.js';
import { errnoLabel, formatBytes } from '../../../../app/shared/format.js';
import { useApp } from '../../store/context.js';
import type { EventRecord } from '../../store/events-slice.js';
import { collapseRepeats, eventSummary } from './collapse.js';
import type { EventLine } from './collapse.js';
import { ActionButton } from '../../components/ActionButton.js';

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

function details(event: EventRecord): string {
  switch (event.code) {
    case 'corrupted':
      return `The image of ${escapeControlChars(event.device)} (device ${event.devMajor}:${event.devMinor}) is no longer valid.`;
    case 'no_space':
      return `The storage reached its limit; ${formatBytes(event.requestedSectors * 512)} more were needed.`;
    case 'low_free_space':
      return `Less than half a portion was left; the driver requested ${formatBytes(event.requestedSectors * 512)} more (granted only while under the limit).`;
  }
}

function EventRow({ line }: { line: EventLine }) {
  const { event, count } = line;
  const device = event.code === 'corrupted' ? escapeControlChars(event.device) : '—';
  const error = event.code === 'corrupted' ? `${event.errCode} ${errnoLabel(event.errCode)}` : '—';
  return (
    <tr data-testid="event-row" data-code={event.code} data-count={count} className={event.code === 'low_free_space' ? undefined : 'row-alert'}>
      <td className="num">
        {count > 1 ? (
          <>
            <time dateTime={new Date(line.oldestTimeMs).toISOString()}>{time(line.oldestTimeMs)}</time> –{' '}
          </>
        ) : null}
        <time dateTime={new Date(event.timeMs).toISOString()}>{time(event.timeMs)}</time>
      </td>
      <td data-testid="event-code">
        {CODE_LABELS[event.code]}
        {count > 1 ? <span className="muted"> ×{count}</span> : null}
      </td>
      <td>{device}</td>
      <td>{error}</td>
      <td className="muted">{details(event)}</td>
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
    return [...bySnapshot.entries()].map(([id, list]) => ({ id, list, lines: collapseRepeats(list) }));
  }, [events]);

  return (
    <section aria-labelledby="screen-title">
      <h2 id="screen-title">Events</h2>
      <p className="muted">
        What the snapshots reported while the application runs, newest first, whichever screen is open.{' '}
        <ActionButton type="button" className="small" onClick={clear} disabled={events.length === 0}>
          Clear the timeline
        </ActionButton>
      </p>
      <dl className="facts event-legend">
        <dt>Low free space</dt>
        <dd>The difference storage asked for its next portion; normal while a snapshot is held, until the limit is reached.</dd>
        <dt>No space</dt>
        <dd>The storage reached its limit: the next copy fails the snapshot.</dd>
        <dt>Corrupted</dt>
        <dd>A snapshot image lost data and can no longer be used.</dd>
      </dl>
      {groups.length === 0 ? <p className="muted">No events yet. They appear here while a snapshot is held.</p> : null}
      {groups.map(({ id, list, lines }) => (
        <section key={id} className="card" aria-labelledby={`events-${id}`} data-testid="event-group">
          <h3 id={`events-${id}`}>
            Snapshot <code>{id}</code> <span className="muted">({eventSummary(list)})</span>
          </h3>
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">Events of snapshot {id}, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Event</th>
                  <th scope="col">Device</th>
                  <th scope="col">Error</th>
                  <th scope="col">Details</th>
                </tr>
              </thead>
              <tbody>
                {lines.map((line) => (
                  <EventRow key={line.event.seq} line={line} />
                ))}
              </tbody>
            </table>
          </div>
        </section>
      ))}
    </section>
  );
}
