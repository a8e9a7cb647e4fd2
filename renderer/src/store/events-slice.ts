import type { SnapshotEventEntry } from '../../../app/shared/types.js';
import { errnoLabel } from '../../../app/shared/format.js';
import type { GetState, SetState } from './types.js';

/** A received event with a sequence number (stable React key). */
export type EventRecord = SnapshotEventEntry & { seq: number };

export interface EventAlert {
  seq: number;
  text: string;
}

/** The timeline keeps the newest this many events. */
export const MAX_EVENTS = 2000;

export interface EventsSlice {
  events: EventRecord[];
  /** A corrupted / no-space event not yet dismissed. */
  alert: EventAlert | null;
  addEvent(event: SnapshotEventEntry): void;
  dismissAlert(): void;
  clearEvents(): void;
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

export function createEventsSlice(set: SetState, _get: GetState): EventsSlice {
  let seq = 0;
  return {
    events: [],
    alert: null,
    addEvent(event) {
      seq++;
      const record: EventRecord = { ...event, seq };
      const text = alertText(event);
      set((s) => {
        const events = s.events.length >= MAX_EVENTS ? [...s.events.slice(1 - MAX_EVENTS), record] : [...s.events, record];
        return text === null ? { events } : { events, alert: { seq, text } };
      });
    },
    dismissAlert: () => set({ alert: null }),
    clearEvents: () => set({ events: [], alert: null }),
  };
}
