/** What a backup plan allows, in words (pure). */
import type { BackupKind, BackupPlan, BackupPlanEntry } from '../../../../app/shared/types.js';

export const KIND_LABELS: Record<BackupKind, string> = {
  full: 'Full',
  incremental: 'Incremental',
  differential: 'Differential',
};

export const KIND_HINTS: Record<BackupKind, string> = {
  full: 'A complete image of each device. Starts a new chain.',
  incremental: 'Only the blocks changed since the last backup point.',
  differential: 'Only the blocks changed since the last full backup.',
};

/** The kinds every device of the plan allows (a backup set is one kind for all). */
export function allowedKinds(plan: BackupPlan): BackupKind[] {
  const all: BackupKind[] = ['full', 'incremental', 'differential'];
  if (plan.devices.length === 0) return ['full'];
  return all.filter((k) => plan.devices.every((d) => d.allowed.includes(k)));
}

/** Incremental where the chain allows it, else full. */
export function defaultKind(plan: BackupPlan): BackupKind {
  return allowedKinds(plan).includes('incremental') ? 'incremental' : 'full';
}

/** The devices whose chain cannot continue with `kind`. */
export function blockedDevices(plan: BackupPlan, kind: BackupKind): BackupPlanEntry[] {
  return plan.devices.filter((d) => !d.allowed.includes(kind));
}

/** One sentence per device about its chain: "disk1: 2 points, last incremental 2026-12-01 14:02." */
export function chainSentence(entry: BackupPlanEntry, formatTime: (iso: string) => string): string {
  if (entry.points === 0 || entry.lastPoint === null) return `${entry.device}: no backup yet in this folder; the first one is a full backup.`;
  const last = `last ${entry.lastPoint.kind} ${formatTime(entry.lastPoint.time)}`;
  return `${entry.device}: ${entry.points} point${entry.points === 1 ? '' : 's'}, ${last}.`;
}

/**
 * Why incremental / differential cannot be made for a device, in words: the helper's
 * reason, or (with no points yet) that a chain starts with a full backup.
 */
export function reasonText(entry: BackupPlanEntry): string | null {
  if (entry.allowed.includes('incremental') && entry.allowed.includes('differential')) return null;
  // No point yet is not a broken chain: a chain starts with a full backup.
  if (entry.points === 0) return `${entry.device}: there is no earlier backup of this device in the folder.`;
  if (entry.reason !== null) return `${entry.device}: ${entry.reason}`;
  return `${entry.device}: the chain cannot continue.`;
}

/** "2026-12-01T14:02:05.000Z" -> "2026-12-01 14:02" in local time; the text itself when not a date. */
export function shortTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
