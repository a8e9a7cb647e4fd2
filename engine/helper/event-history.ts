/**
 * The events of each snapshot, kept by the helper so that every client (a reload,
 * a second tab, the CLI) sees the same story, also after the snapshot has ended,
 * until someone dismisses it. Bounded twice: at most MAX_EVENTS_PER_SNAPSHOT events
 * per snapshot (a low-free-space event is dropped before a no-space or corrupted
 * one) and at most MAX_SNAPSHOTS snapshots (the longest-ended history goes first).
 * Persisted in the state directory (events.json), so a restarted helper has it too.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { BlksnapError } from '../abi/errno.js';
import type { SnapshotEvent, SnapshotId } from '../abi/types.js';
import { EventHistorySchema } from '../protocol/schemas.js';
import type { EventHistory } from '../protocol/schemas.js';
import { JsonStateFile } from './json-state-file.js';

export const EVENT_HISTORY_FILE = 'events.json';
/** Events kept per snapshot (events.history answers stay far below the protocol's line limit). */
export const MAX_EVENTS_PER_SNAPSHOT = 100;
/** Snapshots whose events are kept. */
export const MAX_SNAPSHOTS = 32;

const HistoryFileSchema = z.strictObject({ version: z.literal(1), snapshots: z.array(EventHistorySchema) });

interface Entry extends EventHistory {
  /** When its last event came or it ended (orders the list, most recent first). */
  touchedMs: number;
}

export interface EventHistoryLimits {
  eventsPerSnapshot: number;
  snapshots: number;
}

export class EventHistoryStore {
  private readonly entries = new Map<SnapshotId, Entry>();
  private readonly file: JsonStateFile | null;
  private readonly limits: EventHistoryLimits;

  /** `stateDir` null: kept in memory only (tests, or a helper without a state directory). */
  constructor(
    stateDir: string | null,
    private readonly now: () => number = Date.now,
    limits: Partial<EventHistoryLimits> = {},
  ) {
    this.file = stateDir === null ? null : new JsonStateFile(join(stateDir, EVENT_HISTORY_FILE));
    this.limits = { eventsPerSnapshot: limits.eventsPerSnapshot ?? MAX_EVENTS_PER_SNAPSHOT, snapshots: limits.snapshots ?? MAX_SNAPSHOTS };
  }

  /** Reads the file; a missing or unreadable one starts empty. */
  async load(): Promise<void> {
    if (this.file === null) return;
    const parsed = HistoryFileSchema.safeParse(await this.file.read());
    if (!parsed.success) return;
    for (const h of parsed.data.snapshots) {
      const last = h.events[h.events.length - 1];
      this.entries.set(h.snapshotId, { ...h, touchedMs: Math.max(h.endedMs ?? 0, last?.timeMs ?? 0) });
    }
  }

  /** Keeps an event (`name`: the snapshot's name now, for a history that outlives it). */
  record(event: SnapshotEvent, name: string | null): Promise<void> {
    let entry = this.entries.get(event.snapshotId);
    if (!entry) {
      entry = { snapshotId: event.snapshotId, name, endedMs: null, dropped: 0, events: [], touchedMs: 0 };
      this.entries.set(event.snapshotId, entry);
    }
    entry.events.push(event);
    entry.touchedMs = Math.max(entry.touchedMs, event.timeMs, this.now());
    while (entry.events.length > this.limits.eventsPerSnapshot) {
      const lowSpace = entry.events.findIndex((e) => e.code === 'low_free_space');
      entry.events.splice(lowSpace >= 0 ? lowSpace : 0, 1);
      entry.dropped++;
    }
    this.trimSnapshots(event.snapshotId);
    return this.save();
  }

  /** The snapshot ended (destroyed, or found gone): its history stays until dismissed. */
  ended(id: SnapshotId): Promise<void> {
    const entry = this.entries.get(id);
    if (!entry || entry.endedMs !== null) return Promise.resolve();
    entry.endedMs = this.now();
    entry.touchedMs = Math.max(entry.touchedMs, entry.endedMs);
    return this.save();
  }

  /** After a restart: histories of snapshots that no longer exist are marked ended. */
  endAllBut(ids: readonly SnapshotId[]): Promise<void> {
    let changed = false;
    for (const entry of this.entries.values()) {
      if (entry.endedMs === null && !ids.includes(entry.snapshotId)) {
        entry.endedMs = this.now();
        changed = true;
      }
    }
    return changed ? this.save() : Promise.resolve();
  }

  /** ESRCH when there is no history for the snapshot. */
  async dismiss(id: SnapshotId): Promise<void> {
    if (!this.entries.delete(id)) throw new BlksnapError('ESRCH', `no event history for snapshot ${id} (already dismissed, or it had no events)`);
    await this.save();
  }

  /** Histories, the most recently active first (one snapshot's with `id`; [] if it has none). */
  list(id?: SnapshotId): EventHistory[] {
    const chosen = id === undefined ? [...this.entries.values()] : [this.entries.get(id)].filter((e): e is Entry => e !== undefined);
    return chosen.sort((a, b) => b.touchedMs - a.touchedMs).map(toHistory);
  }

  /** Resolves when the writes asked for so far have ended (shutdown). */
  async settled(): Promise<void> {
    await this.file?.settled();
  }

  private trimSnapshots(keep: SnapshotId): void {
    while (this.entries.size > this.limits.snapshots) {
      const candidates = [...this.entries.values()].filter((e) => e.snapshotId !== keep);
      // an ended history goes before a held snapshot's; among them the least recently active
      const victim = candidates.sort((a, b) => Number(a.endedMs === null) - Number(b.endedMs === null) || a.touchedMs - b.touchedMs)[0];
      if (!victim) return;
      this.entries.delete(victim.snapshotId);
    }
  }

  private save(): Promise<void> {
    return this.file === null ? Promise.resolve() : this.file.write(() => ({ version: 1, snapshots: [...this.entries.values()].map(toHistory) }));
  }
}

function toHistory(entry: Entry): EventHistory {
  return { snapshotId: entry.snapshotId, name: entry.name, endedMs: entry.endedMs, dropped: entry.dropped, events: entry.events.map((e) => ({ ...e })) };
}
