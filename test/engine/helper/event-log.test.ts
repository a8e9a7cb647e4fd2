/** The helper's log lines for snapshot events name the errno and say what it means. */
import { describe, expect, it } from 'vitest';
import { eventLogLine } from '../../../engine/helper/event-log.js';

const ID = '0b7c1a52-8d7e-4c36-9a57-2f0f3bd0e0a1';
const base = { snapshotId: ID, timeMs: 0 };

describe('eventLogLine', () => {
  it('says a corrupted image with -28 is ENOSPC: a full difference storage', () => {
    expect(eventLogLine({ ...base, code: 'corrupted', device: 'disk1', devMajor: 240, devMinor: 0, errCode: -28 })).toBe(
      `snapshot ${ID}: the image of disk1 is corrupted: ENOSPC (-28): the difference storage is full (its limit was reached or its file system has no space left)`,
    );
  });

  it('says -5 is an I/O error, and names other errnos', () => {
    expect(eventLogLine({ ...base, code: 'corrupted', device: 'sda', devMajor: 8, devMinor: 0, errCode: -5 })).toBe(
      `snapshot ${ID}: the image of sda is corrupted: EIO (-5): an I/O error`,
    );
    expect(eventLogLine({ ...base, code: 'corrupted', device: 'sda', devMajor: 8, devMinor: 0, errCode: -12 })).toMatch(/ENOMEM \(-12\): error ENOMEM$/);
  });

  it('gives the size of no_space and low_free_space requests', () => {
    expect(eventLogLine({ ...base, code: 'no_space', requestedSectors: 128 })).toBe(
      `snapshot ${ID}: no space left in the difference storage for 64 KiB more (ENOSPC)`,
    );
    expect(eventLogLine({ ...base, code: 'low_free_space', requestedSectors: 2048 })).toBe(
      `snapshot ${ID}: the difference storage is running low on space and requested 1 MiB more (given only while under its limit)`,
    );
    // a request, never a growth that may not have happened
    expect(eventLogLine({ ...base, code: 'low_free_space', requestedSectors: 2048 })).not.toMatch(/grew|grown|added|allocated/);
  });
});
