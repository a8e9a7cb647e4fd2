// @vitest-environment jsdom
/** The timeline shows what the helper kept: ended snapshots' events (a corruption) with name and end, and dismisses through the helper. */
import { act, cleanup, fireEvent, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { ok } from '../../../../app/shared/result.js';
import type { EventHistoryEntry } from '../../../../app/shared/types.js';
import { renderApp } from '../../render-app.js';
import { snapshot } from '../../fixtures.js';

afterEach(cleanup);

const ENDED = new Date(2026, 10, 30, 14, 5, 11).getTime();
const kept: EventHistoryEntry[] = [
  {
    snapshotId: 'aaaa1111',
    name: 'nightly',
    endedMs: ENDED,
    dropped: 3,
    events: [
      { code: 'low_free_space', snapshotId: 'aaaa1111', timeMs: ENDED - 5000, requestedSectors: 2048 },
      { code: 'corrupted', snapshotId: 'aaaa1111', timeMs: ENDED - 4000, device: 'disk1', devMajor: 259, devMinor: 0, errCode: -28 },
    ],
  },
];

describe('Events screen over the helper\'s history', () => {
  it('shows a destroyed snapshot\'s corruption with its name, its end (with the date) and the left-out count', async () => {
    renderApp({ listEventHistory: () => ok(kept) });
    fireEvent.click(await screen.findByRole('button', { name: /^Events/ }));
    const group = await screen.findByTestId('event-group');
    expect(within(group).getByRole('heading').textContent).toMatch(/^nightly Snapshot aaaa1111/);
    expect(within(group).getByTestId('event-group-state').textContent).toBe('(ended 2026-11-30 14:05:11; 1 corrupted, 1 low free space)');
    expect(within(group).getByText('3 older event(s) were left out to keep the history bounded.')).toBeTruthy();
    const rows = within(group).getAllByTestId('event-row');
    expect(rows.map((r) => r.getAttribute('data-code'))).toEqual(['corrupted', 'low_free_space']);
    // not today's: the time carries its date
    expect(rows[0]?.querySelector('time')?.textContent).toBe('2026-11-30 14:05:07.000');
  });

  it('says "held" for a snapshot that still exists', async () => {
    renderApp({
      listSnapshots: () => ok([snapshot('aaaa1111', ['disk1'], { state: 'taken', name: 'nightly' })]),
      listEventHistory: () => ok([{ ...kept[0]!, endedMs: null }]),
    });
    fireEvent.click(await screen.findByRole('button', { name: /^Events/ }));
    await waitFor(() => expect(screen.getByTestId('event-group-state').textContent).toMatch(/^\(held; /));
  });

  it('Dismiss forgets the group in the helper; a live event of another snapshot stays', async () => {
    const { fake } = renderApp({ listEventHistory: () => ok(kept), dismissEventHistory: () => ok(null) });
    fireEvent.click(await screen.findByRole('button', { name: /^Events/ }));
    await screen.findByTestId('event-group');
    act(() => fake.emit('onSnapshotEvent', { code: 'low_free_space', snapshotId: 'bbbb2222', timeMs: Date.now(), requestedSectors: 8 }));
    expect(screen.getAllByTestId('event-group')).toHaveLength(2);
    fireEvent.click(screen.getByRole('button', { name: 'Dismiss the events of snapshot nightly' }));
    await waitFor(() => expect(screen.getAllByTestId('event-group')).toHaveLength(1));
    expect(fake.paramsOf('dismissEventHistory')).toEqual([{ snapshotId: 'aaaa1111' }]);
    expect(screen.getByTestId('event-group').getAttribute('data-snapshot')).toBe('bbbb2222');
  });

  it('a low-free-space event says what was requested, in sectors, and that it is not growth; no-space says what was needed', async () => {
    renderApp({ listEventHistory: () => ok(kept) });
    fireEvent.click(await screen.findByRole('button', { name: /^Events/ }));
    const rows = await screen.findAllByTestId('event-row');
    const low = rows.find((r) => r.getAttribute('data-code') === 'low_free_space');
    expect(low?.lastElementChild?.textContent).toBe(
      'Less than half a portion was left, so the storage requested its next portion: 1 MiB (2048 sectors). A request, not growth: it is given only while the storage is under its limit.',
    );
    expect(low?.textContent).not.toMatch(/grew|grown|added/);
  });
});
