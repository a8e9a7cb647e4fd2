/** The timeline's lines: runs of identical "low free space" events shown as one line (pure). */
import type { EventRecord } from '../../store/events-slice.js';

export interface EventLine {
  /** The newest event of the run (its seq is the line's key). */
  event: EventRecord;
  /** How many events the line stands for (1 unless collapsed). */
  count: number;
  /** Time of the oldest event of the run. */
  oldestTimeMs: number;
}

/**
 * `newestFirst` events -> lines. Consecutive low_free_space events asking for the same
 * amount are one line with a count; corrupted and no_space events always get a line.
 */
export function collapseRepeats(newestFirst: EventRecord[]): EventLine[] {
  const lines: EventLine[] = [];
  for (const event of newestFirst) {
    const last = lines[lines.length - 1];
    if (
      last !== undefined &&
      event.code === 'low_free_space' &&
      last.event.code === 'low_free_space' &&
      last.event.requestedSectors === event.requestedSectors
    ) {
      last.count++;
      last.oldestTimeMs = event.timeMs;
      continue;
    }
    lines.push({ event, count: 1, oldestTimeMs: event.timeMs });
  }
  return lines;
}

/** "2 corrupted, 1 no space, 8 low free space" for a snapshot's events. */
export function eventSummary(events: EventRecord[]): string {
  const counts = { corrupted: 0, no_space: 0, low_free_space: 0 };
  for (const e of events) counts[e.code]++;
  const parts: string[] = [];
  if (counts.corrupted > 0) parts.push(`${counts.corrupted} corrupted`);
  if (counts.no_space > 0) parts.push(`${counts.no_space} no space`);
  if (counts.low_free_space > 0) parts.push(`${counts.low_free_space} low free space`);
  return parts.join(', ');
}
