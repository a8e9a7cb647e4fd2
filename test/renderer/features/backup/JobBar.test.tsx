// @vitest-environment jsdom
import { act, cleanup, fireEvent, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { ok } from '../../../../app/shared/result.js';
import { renderApp } from '../../render-app.js';
import { GiB, MiB, job } from '../../fixtures.js';

afterEach(cleanup);

describe('job bar', () => {
  it('shows bytes done of total, throughput and ETA on every screen, fed by onJob', async () => {
    const { fake } = renderApp();
    expect(screen.queryByTestId('job-bar')).toBeNull();
    act(() => fake.emit('onJob', job('b1', { title: 'Full backup of disk1 to /srv/backup', done: 512 * MiB, total: 2 * GiB, bytesPerSecond: 100 * MiB, etaSeconds: 95 })));
    const bar = screen.getByTestId('job-bar');
    expect(within(bar).getByTestId('job-progress').textContent).toBe('512 MiB of 2 GiB (25%)');
    expect(within(bar).getByTestId('job-rate').textContent).toBe('100 MiB/s, about 1 min 35 s left');
    expect(within(bar).getByRole('progressbar', { name: 'Progress of Full backup of disk1 to /srv/backup' }).getAttribute('value')).toBe(String(512 * MiB));
    // Another screen: the bar stays, and follows the job.
    fireEvent.click(screen.getByRole('button', { name: 'CBT heatmap' }));
    act(() => fake.emit('onJob', job('b1', { title: 'Full backup of disk1 to /srv/backup', done: GiB, total: 2 * GiB })));
    expect(within(screen.getByTestId('job-bar')).getByTestId('job-progress').textContent).toBe('1 GiB of 2 GiB (50%)');
  });

  it('cancels a running job through jobsCancel, and a late progress message does not revive it', async () => {
    const { fake } = renderApp({ jobsCancel: () => ok(null) });
    act(() => fake.emit('onJob', job('b7', { title: 'Incremental backup of disk1', done: MiB })));
    fireEvent.click(screen.getByRole('button', { name: 'Cancel Incremental backup of disk1' }));
    await waitFor(() => expect(fake.paramsOf('jobsCancel')).toEqual([{ jobId: 'b7' }]));
    act(() => fake.emit('onJob', job('b7', { title: 'Incremental backup of disk1', state: 'cancelled', endedAt: '2026-12-02T06:01:00Z' })));
    act(() => fake.emit('onJob', job('b7', { title: 'Incremental backup of disk1', done: 2 * MiB })));
    const row = screen.getByTestId('job');
    expect(row.getAttribute('data-state')).toBe('cancelled');
    expect(within(row).getByTestId('job-outcome').textContent).toBe('Cancelled.');
    expect(within(row).queryByTestId('job-cancel')).toBeNull();
    fireEvent.click(within(row).getByRole('button', { name: 'Close Incremental backup of disk1' }));
    expect(screen.queryByTestId('job-bar')).toBeNull();
  });

  it('keeps running jobs and only the last finished one in the bar', async () => {
    const { fake } = renderApp();
    act(() => {
      fake.emit('onJob', job('a', { title: 'A', state: 'done' }));
      fake.emit('onJob', job('b', { title: 'B' }));
      fake.emit('onJob', job('c', { title: 'C', state: 'failed', error: { code: 'EIO', message: 'read error' } }));
    });
    expect(screen.getAllByTestId('job').map((j) => j.getAttribute('data-job-id'))).toEqual(['b', 'c']);
    fireEvent.click(screen.getByRole('button', { name: 'Close C' }));
    // Closing the last outcome does not bring back an older one.
    expect(screen.getAllByTestId('job').map((j) => j.getAttribute('data-job-id'))).toEqual(['b']);
  });

  it('shows the jobs the helper already runs when the page opens (jobsList)', async () => {
    renderApp({ jobsList: () => ok([job('r1', { kind: 'restore', title: 'Restore to /var/tmp/r.img', done: GiB, total: 4 * GiB })]) });
    expect((await screen.findByTestId('job-progress')).textContent).toBe('1 GiB of 4 GiB (25%)');
  });
});
