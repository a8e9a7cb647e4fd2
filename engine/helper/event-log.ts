/** The helper's log line for a snapshot event, in words an administrator understands. */
import { errnoName } from '../abi/errno.js';
import type { SnapshotEvent } from '../abi/types.js';
import { SECTOR_SIZE } from '../abi/types.js';
import { formatSize } from '../devices/size.js';

const bytesText = (sectors: number): string => formatSize(sectors * SECTOR_SIZE);

export function eventLogLine(event: SnapshotEvent): string {
  const head = `snapshot ${event.snapshotId}`;
  switch (event.code) {
    case 'corrupted': {
      const name = errnoName(event.errCode);
      const why =
        name === 'ENOSPC'
          ? 'the difference storage is full (its limit was reached or its file system has no space left)'
          : name === 'EIO'
            ? 'an I/O error'
            : `error ${name ?? 'unknown'}`;
      return `${head}: the image of ${event.device} is corrupted: ${name ?? 'errno'} (${event.errCode}): ${why}`;
    }
    case 'no_space':
      return `${head}: no space left in the difference storage for ${bytesText(event.requestedSectors)} more (ENOSPC)`;
    case 'low_free_space':
      return `${head}: the difference storage is running low on space; ${bytesText(event.requestedSectors)} more requested`;
  }
}
