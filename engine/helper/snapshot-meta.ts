/**
 * Per-snapshot metadata the helper keeps for every client (a reload, a second tab,
 * the CLI): the name the user gave, and when the snapshot was created and taken.
 * Persisted as JSON in the helper's state directory (written to a temporary file,
 * then renamed), so a restarted UI or helper tells the same story.
 */
import { join } from 'node:path';
import { z } from 'zod';
import type { SnapshotId } from '../abi/types.js';
import type { SnapshotSummary } from '../protocol/schemas.js';
import { JsonStateFile } from './json-state-file.js';

export interface SnapshotMeta {
  name: string | null;
  createdMs: number;
  takenMs: number | null;
}

const MetaFileSchema = z.record(
  z.string(),
  z.strictObject({
    name: z.string().max(64).nullable(),
    createdMs: z.number().int().nonnegative(),
    takenMs: z.number().int().nonnegative().nullable(),
  }),
);

export const SNAPSHOT_META_FILE = 'snapshots.json';

export class SnapshotMetaStore {
  private readonly entries = new Map<SnapshotId, SnapshotMeta>();
  private readonly file: JsonStateFile | null;

  /** `stateDir` null: kept in memory only (tests, or a helper without a state directory). */
  constructor(stateDir: string | null, private readonly now: () => number = Date.now) {
    this.file = stateDir === null ? null : new JsonStateFile(join(stateDir, SNAPSHOT_META_FILE));
  }

  /** Reads the file; a missing or unreadable one starts empty (the metadata is a convenience, not the truth). */
  async load(): Promise<void> {
    if (this.file === null) return;
    const parsed = MetaFileSchema.safeParse(await this.file.read());
    if (parsed.success) for (const [id, meta] of Object.entries(parsed.data)) this.entries.set(id, meta);
  }

  get(id: SnapshotId): SnapshotMeta | undefined {
    const m = this.entries.get(id);
    return m ? { ...m } : undefined;
  }

  async created(id: SnapshotId, name: string | null): Promise<void> {
    this.entries.set(id, { name, createdMs: this.now(), takenMs: null });
    await this.save();
  }

  async taken(id: SnapshotId): Promise<void> {
    const m = this.entries.get(id);
    this.entries.set(id, { name: m?.name ?? null, createdMs: m?.createdMs ?? this.now(), takenMs: this.now() });
    await this.save();
  }

  async forget(id: SnapshotId): Promise<void> {
    if (!this.entries.delete(id)) return;
    await this.save();
  }

  /** Drops entries of snapshots that no longer exist (after a restart). */
  async keepOnly(ids: readonly SnapshotId[]): Promise<void> {
    let changed = false;
    for (const id of [...this.entries.keys()]) {
      if (!ids.includes(id)) changed = this.entries.delete(id) || changed;
    }
    if (changed) await this.save();
  }

  /** The whole map, written after the writes before it (json-state-file.ts). */
  private save(): Promise<void> {
    return this.file === null ? Promise.resolve() : this.file.write(() => Object.fromEntries(this.entries));
  }
}

/** A snapshots.list entry with the metadata, where there is any. */
export function withMeta(summary: SnapshotSummary, meta: SnapshotMeta | undefined): SnapshotSummary {
  return meta ? { ...summary, name: meta.name, createdMs: meta.createdMs, takenMs: meta.takenMs } : summary;
}
