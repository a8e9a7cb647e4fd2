import { describe, expect, it } from 'vitest';
import { collapseRepeats, eventSummary } from '../../../../renderer/src/features/event-log/collapse.js';
import type { EventRecord } from '../../../../renderer/src/store/events-slice.js';

let seq = 0;
const low = (timeMs: number, requestedSectors = 2048): EventRecord => ({ code: 'low_free_space', snapshotId: 's', timeMs, requestedSectors, seq: ++seq });
const noSpace = (timeMs: number): EventRecord => ({ code: 'no_space', snapshotId: 's', timeMs, requestedSectors: 512, seq: ++seq });
const corrupted = (timeMs: number, device: string): EventRecord => ({
  code: 'corrupted',
  snapshotId: 's',
  timeMs,
  device,
  devMajor: 240,
  devMinor: 0,
  errCode: -28,
  seq: ++seq,
});

describe('event timeline lines', () => {
  it('collapses a run of identical low-free-space events into one line with a count and a time range', () => {
    const newestFirst = [corrupted(90, 'disk2'), corrupted(80, 'disk1'), noSpace(70), low(60), low(50), low(40), low(30, 1024), low(20)];
    const lines = collapseRepeats(newestFirst);
    expect(lines.map((l) => [l.event.code, l.count])).toEqual([
      ['corrupted', 1],
      ['corrupted', 1],
      ['no_space', 1],
      ['low_free_space', 3],
      ['low_free_space', 1],
      ['low_free_space', 1],
    ]);
    expect(lines[3]?.event.timeMs).toBe(60);
    expect(lines[3]?.oldestTimeMs).toBe(40);
  });

  it('never merges corrupted or no-space events', () => {
    expect(collapseRepeats([noSpace(2), noSpace(1)])).toHaveLength(2);
    expect(collapseRepeats([corrupted(2, 'a'), corrupted(1, 'a')])).toHaveLength(2);
    expect(collapseRepeats([])).toEqual([]);
  });

  it('summarises a snapshot\'s events by kind', () => {
    expect(eventSummary([corrupted(3, 'a'), noSpace(2), low(1), low(0)])).toBe('1 corrupted, 1 no space, 2 low free space');
    expect(eventSummary([low(1)])).toBe('1 low free space');
  });
});
