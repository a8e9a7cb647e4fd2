/** What a snapshot event means, in words an administrator understands (the helper's log, the CLI's events). */
import { errnoName } from '../abi/errno.js';
import type { SnapshotEvent } from '../abi/types.js';
import { SECTOR_SIZE } from '../abi/types.js';
import { formatSize } from '../devices/size.js';

const bytesText = (sectors: number): string => formatSize(sectors * SECTOR_SIZE);

/** The event's meaning, without the snapshot. */
export function eventMeaning(event: SnapshotEvent): string {
  switch (event.code) {
    case 'corrupted': {
      const name = errnoName(event.errCode);
      const why =
        name === 'ENOSPC'
          ? 'the difference storage is full (its limit was reached or its file system has no space left)'
          : name === 'EIO'
            ? 'an I/O error'
            : `error ${name ?? 'unknown'}`;
      return `the image of ${event.device} is corrupted: ${name ?? 'errno'} (${event.errCode}): ${why}`;
    }
    case 'no_space':
      return `no space left in the difference storage for ${bytesText(event.requestedSectors)} more (ENOSPC)`;
    case 'low_free_space':
      // a request, not a growth: the storage is given the portion only while under its limit
      return `the difference storage is running low on space and requested ${bytesText(event.requestedSectors)} more (given only while under its limit)`;
  }
}

/** The helper's log line for a snapshot event. */
export function eventLogLine(event: SnapshotEvent): string {
  return `snapshot ${event.snapshotId}: ${eventMeaning(event)}`;
}
