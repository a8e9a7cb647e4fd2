/** CBT facts the bridge and the renderer share (no engine import: app/shared stays pure). */

/** hello capability: cbtMap can read the active table (the embedded engine advertises it). */
export const CBT_ACTIVE_TABLE = 'cbt-active-table';

/** hello capability: a held snapshot's storage limit can be raised (the embedded engine advertises it). */
export const STORAGE_GROW = 'storage-grow';

/**
 * The active change number that follows a take whose number is `changesNumber`
 * (cbt_map_switch: previous + 1, restarting at 1 after 255).
 */
export function activeChangeNumber(changesNumber: number): number {
  return changesNumber >= 255 ? 1 : changesNumber + 1;
}
