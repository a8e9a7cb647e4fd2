// @vitest-environment jsdom
import { cleanup, screen, within } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { ok } from '../../../../app/shared/result.js';
import { snapshot } from '../../fixtures.js';
import { renderApp } from '../../render-app.js';
import { fireEvent } from '@testing-library/react';

afterEach(cleanup);

describe('snapshot names and times from the helper', () => {
  it('shows the name, and the created and taken times with their date', async () => {
    const created = new Date(2026, 11, 2, 7, 30, 12).getTime();
    const taken = new Date(2026, 11, 2, 7, 30, 15).getTime();
    renderApp({
      listSnapshots: () =>
        ok([
          snapshot('s1', ['disk1'], { state: 'taken', name: 'before upgrade', createdMs: created, takenMs: taken }),
          snapshot('s2', ['disk2'], { createdMs: created, takenMs: null }),
        ]),
    });
    fireEvent.click(screen.getByRole('button', { name: 'Snapshots' }));
    const cards = await screen.findAllByTestId('snapshot-row');
    const first = cards.find((c) => c.dataset.snapshotId === 's1')!;
    expect(within(first).getByTestId('snapshot-name').textContent).toBe('before upgrade');
    expect(within(first).getByTestId('snapshot-times').textContent).toBe('Created 2026-12-02 07:30:12 · taken 2026-12-02 07:30:15');
    const second = cards.find((c) => c.dataset.snapshotId === 's2')!;
    expect(within(second).queryByTestId('snapshot-name')).toBeNull();
    expect(within(second).getByTestId('snapshot-times').textContent).toBe('Created 2026-12-02 07:30:12 · not taken yet');
  });
});
