import type { BlksnapApi } from '../../../app/shared/contract.js';
import type { EventHistoryEntry, SnapshotEventEntry } from '../../../app/shared/types.js';
import { errnoLabel } from '../../../app/shared/format.js';
import type { GetState, SetState } from './types.js';

/** A received event with a sequence number (stable React key). */
export type EventRecord = SnapshotEventEntry & { seq: number };

export interface EventAlert {
  seq: number;
  text: string;
}

/** What the helper kept about a snapshot besides its events. */
export type KeptHistory = Pick<EventHistoryEntry, 'name' | 'endedMs' | 'dropped'>;

/** The timeline keeps the newest this many events. */
export const MAX_EVENTS = 2000;

export interface EventsSlice {
  /** Oldest first: the helper's kept events, and those received since. */
  events: EventRecord[];
  /** Per snapshot, what the helper's history says (name, end, left-out events). */
  histories: Record<string, KeptHistory>;
  /** A corrupted / no-space event not yet dismissed. */
  alert: EventAlert | null;
  addEvent(event: SnapshotEventEntry): void;
  /** Reads the events the helper kept (at start and after a reconnect) into the timeline. */
  loadEventHistory(): Promise<void>;
  /** Forgets a snapshot's events, in the helper too (every page and the CLI). */
  dismissEvents(snapshotId: string): Promise<void>;
  dismissAlert(): void;
}

/** The text of the alert an event raises, or null for events that need none. */
export function alertText(event: SnapshotEventEntry): string | null {
  switch (event.code) {
    case 'corrupted': {
      const errno = errnoLabel(event.errCode);
      return `Snapshot ${event.snapshotId}: the image of ${event.device} is corrupted${errno ? ` (${errno})` : ''}.`;
    }
    case 'no_space':
      return `Snapshot ${event.snapshotId}: the difference storage is full (limit reached).`;
    case 'low_free_space':
      return null;
  }
}

/** Same event (from the live stream and from the helper's history). */
function eventKey(e: SnapshotEventEntry): string {
  switch (e.code) {
    case 'corrupted':
      return `${e.snapshotId}|${e.timeMs}|${e.code}|${e.device}|${e.errCode}`;
    case 'no_space':
    case 'low_free_space':
      return `${e.snapshotId}|${e.timeMs}|${e.code}|${e.requestedSectors}`;
  }
}

/**
 * The helper's kept events joined with the page's: each event once (an event seen
 * live and listed by the history counts once), oldest first, at most MAX_EVENTS.
 */
export function mergeEvents(page: EventRecord[], kept: SnapshotEventEntry[], nextSeq: () => number): EventRecord[] {
  const unmatched = new Map<string, number>();
  for (const e of page) unmatched.set(eventKey(e), (unmatched.get(eventKey(e)) ?? 0) + 1);
  const merged = [...page];
  for (const e of kept) {
    const key = eventKey(e);
    const left = unmatched.get(key) ?? 0;
    if (left > 0) unmatched.set(key, left - 1);
    else merged.push({ ...e, seq: nextSeq() });
  }
  merged.sort((a, b) => a.timeMs - b.timeMs || a.seq - b.seq);
  return merged.length > MAX_EVENTS ? merged.slice(merged.length - MAX_EVENTS) : merged;
}

export function createEventsSlice(api: BlksnapApi, set: SetState, _get: GetState): EventsSlice {
  let seq = 0;
  const nextSeq = (): number => ++seq;
  return {
    events: [],
    histories: {},
    alert: null,
    addEvent(event) {
      const record: EventRecord = { ...event, seq: nextSeq() };
      const text = alertText(event);
      set((s) => {
        const events = s.events.length >= MAX_EVENTS ? [...s.events.slice(1 - MAX_EVENTS), record] : [...s.events, record];
        return text === null ? { events } : { events, alert: { seq: record.seq, text } };
      });
    },
    async loadEventHistory() {
      const r = await api.listEventHistory();
      // a helper that is not there: the page keeps what it has, and loads again on reconnect
      if (!r.ok) return;
      const histories: Record<string, KeptHistory> = {};
      for (const h of r.value) histories[h.snapshotId] = { name: h.name, endedMs: h.endedMs, dropped: h.dropped };
      const kept = r.value.flatMap((h) => h.events);
      set((s) => ({ histories, events: mergeEvents(s.events, kept, nextSeq) }));
    },
    async dismissEvents(snapshotId) {
      const r = await api.dismissEventHistory({ snapshotId });
      // ESRCH: the helper kept none (dismissed elsewhere meanwhile): the page forgets its own too
      if (!r.ok && r.error.code !== 'ESRCH') {
        set({ notice: { kind: 'error', text: `Dismissing the events of snapshot ${snapshotId} failed: ${r.error.code}: ${r.error.message}` } });
        return;
      }
      set((s) => {
        const histories = { ...s.histories };
        delete histories[snapshotId];
        return { histories, events: s.events.filter((e) => e.snapshotId !== snapshotId), notice: { kind: 'info', text: `Dismissed the events of snapshot ${snapshotId}.` } };
      });
    },
    dismissAlert: () => set({ alert: null }),
  };
}
