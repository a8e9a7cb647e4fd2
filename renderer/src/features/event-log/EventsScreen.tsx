import { useMemo, useState } from 'react';
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

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** "14:02:03.120", with the date in front when it is not today's. */
function time(ms: number, now = new Date()): string {
  const d = new Date(ms);
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  return d.toDateString() === now.toDateString() ? clock : `${dateText(d)} ${clock}`;
}

function dateText(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** "ended 2026-12-02 14:05:11" */
function endedText(ms: number): string {
  const d = new Date(ms);
  return `ended ${dateText(d)} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "1 GiB (2097152 sectors)" */
function sectorsText(sectors: number): string {
  return `${formatBytes(sectors * 512)} (${sectors} sector${sectors === 1 ? '' : 's'})`;
}

function details(event: EventRecord): string {
  switch (event.code) {
    case 'corrupted':
      return `The image of ${escapeControlChars(event.device)} (device ${event.devMajor}:${event.devMinor}) is no longer valid.`;
    case 'no_space':
      return `The storage reached its limit; ${sectorsText(event.requestedSectors)} more were needed.`;
    case 'low_free_space':
      // what the event carries is a request: the storage grows only while under its limit
      return `Less than half a portion was left, so the storage requested its next portion: ${sectorsText(event.requestedSectors)}. A request, not growth: it is given only while the storage is under its limit.`;
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

/** The timeline per snapshot, newest first: the events the helper kept (also of ended snapshots) and those since. */
export function EventsScreen() {
  const events = useApp((s) => s.events);
  const histories = useApp((s) => s.histories);
  const snapshots = useApp((s) => s.snapshots);
  const dismiss = useApp((s) => s.dismissEvents);
  const [busy, setBusy] = useState(false);
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

  const run = async (ids: string[]): Promise<void> => {
    setBusy(true);
    try {
      for (const id of ids) await dismiss(id);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="screen-title">
      <h2 id="screen-title">Events</h2>
      <p className="muted">
        What the snapshots reported, newest first. The helper keeps each snapshot's events, also after it is destroyed, until they are
        dismissed: a reload, another window and <code>blksnap-manager events</code> show the same.{' '}
        <ActionButton type="button" className="small" onClick={() => void run(groups.map((g) => g.id))} disabled={groups.length === 0 || busy}>
          Dismiss all
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
      {groups.map(({ id, list, lines }) => {
        const live = snapshots.find((s) => s.id === id);
        const kept = histories[id];
        const name = live?.name ?? kept?.name ?? null;
        const state = live ? 'held' : kept?.endedMs != null ? endedText(kept.endedMs) : 'ended';
        return (
          <section key={id} className="card" aria-labelledby={`events-${id}`} data-testid="event-group" data-snapshot={id}>
            <h3 id={`events-${id}`}>
              {name !== null ? <>{escapeControlChars(name)} </> : null}
              Snapshot <code>{id}</code> <span className="muted" data-testid="event-group-state">({state}; {eventSummary(list)})</span>
            </h3>
            {kept !== undefined && kept.dropped > 0 ? (
              <p className="muted">{kept.dropped} older event(s) were left out to keep the history bounded.</p>
            ) : null}
            <p>
              <button type="button" className="small" onClick={() => void run([id])} disabled={busy} aria-label={`Dismiss the events of snapshot ${name ?? id}`}>
                Dismiss
              </button>
            </p>
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
        );
      })}
    </section>
  );
}
