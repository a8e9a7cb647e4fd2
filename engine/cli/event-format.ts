/** One line of text for a snapshot event (snapshot_waitevent, snapshot_watcher). */
import type { SnapshotEvent } from '../abi/types.js';
import { escapeControlChars } from '../protocol/control-chars.js';

export function formatEvent(event: SnapshotEvent): string {
  const head = `event=${event.code} snapshot=${event.snapshotId} time=${new Date(event.timeMs).toISOString()}`;
  switch (event.code) {
    case 'corrupted':
      return `${head} device=${escapeControlChars(event.device)} dev=${event.devMajor}:${event.devMinor} error_code=${event.errCode}`;
    case 'low_free_space':
    case 'no_space':
      return `${head} requested_sectors=${event.requestedSectors}`;
  }
}
