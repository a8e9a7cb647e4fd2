// @vitest-environment jsdom
import { act, cleanup, fireEvent, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { ok } from '../../../../app/shared/result.js';
import { renderApp } from '../../render-app.js';
import type { Handlers } from '../../fake-api.js';
import { catalog, catalogPoint, job } from '../../fixtures.js';

afterEach(cleanup);

const FULL = '0001-20261201-140200-full';
const INCR = '0002-20261202-060000-incremental';

async function openCatalog(extra: Handlers = {}) {
  const app = renderApp({
    backupCatalog: () =>
      ok(
        catalog([
          catalogPoint(FULL, { verify: 'ok', verifiedAt: '2026-12-01T15:00:00Z' }),
          catalogPoint(INCR, { parent: FULL, time: '2026-12-02T06:00:00.000Z', fileSize: 5 * 1024 * 1024, changedBytes: 4 * 1024 * 1024 }),
        ]),
      ),
    backupVerify: () => ok({ jobId: 'v1' }),
    backupRestore: () => ok({ jobId: 'r1' }),
    backupExport: () =>
      ok({ name: 'backup-1', uri: 'nbd://127.0.0.1:10809/backup-1', readOnly: true, mountHint: 'nbdfuse /tmp/b nbd://127.0.0.1:10809/backup-1 &\nmount -o ro /dev/loop0 /mnt' }),
    backupUnexport: () => ok(null),
    ...extra,
  });
  fireEvent.click(screen.getByRole('button', { name: 'Catalog' }));
  fireEvent.change(screen.getByTestId('catalog-dir'), { target: { value: '/srv/backup' } });
  fireEvent.click(screen.getByTestId('catalog-load'));
  await screen.findAllByTestId('catalog-point');
  return app;
}

describe('Catalog screen', () => {
  it('shows each chain as a timeline of points with kind, size, changed bytes and verify status', async () => {
    const { fake } = await openCatalog();
    expect(fake.paramsOf('backupCatalog').at(-1)).toEqual({ dir: '/srv/backup' });
    const points = screen.getAllByTestId('catalog-point');
    expect(points.map((p) => p.getAttribute('data-kind'))).toEqual(['full', 'incremental']);
    expect(within(points[0]!).getByTestId('point-verify').textContent).toMatch(/^verified/);
    expect(within(points[1]!).getByTestId('point-verify').textContent).toBe('not verified');
    expect(points[1]!.textContent).toMatch(/size 5 MiB/);
    expect(points[1]!.textContent).toMatch(/changed 4 MiB/);
    expect(screen.getByTestId('catalog-summary').textContent).toBe('1 chain in /srv/backup, 512 MiB on disk.');
  });

  it('verifies one point in its chain folder and reloads the catalog when the job ends', async () => {
    const { fake } = await openCatalog();
    fireEvent.click(within(screen.getAllByTestId('catalog-point')[1]!).getByTestId('point-verify-button'));
    await waitFor(() => expect(fake.paramsOf('backupVerify')).toEqual([{ dir: '/srv/backup/disk1', point: INCR }]));
    const before = fake.paramsOf('backupCatalog').length;
    act(() => fake.emit('onJob', job('v1', { kind: 'verify', state: 'done', result: { kind: 'verify', ok: true, points: [] } })));
    await waitFor(() => expect(fake.paramsOf('backupCatalog').length).toBe(before + 1));
  });

  it('restores only after a confirmation that names the target, and gives the focus back', async () => {
    const { fake } = await openCatalog();
    const point = screen.getAllByTestId('catalog-point')[1]!;
    fireEvent.click(within(point).getByTestId('point-restore-button'));
    fireEvent.change(within(point).getByTestId('restore-target'), { target: { value: 'restored.img' } });
    fireEvent.click(within(point).getByTestId('restore-submit'));
    expect(within(point).getByTestId('restore-target-error').textContent).toBe('Give the target as an absolute path (starting with /): a new image file, or an existing file or device, not "restored.img".');
    expect(screen.queryByRole('dialog')).toBeNull();

    fireEvent.change(within(point).getByTestId('restore-target'), { target: { value: '/var/tmp/restored.img' } });
    const submit = within(point).getByTestId('restore-submit');
    submit.focus();
    fireEvent.click(submit);
    const dialog = screen.getByRole('dialog', { name: 'Restore this backup point?' });
    expect(within(dialog).getByTestId('restore-dialog-text').textContent).toMatch(/will be written to \/var\/tmp\/restored\.img/);
    expect(within(dialog).getByTestId('restore-confirm').textContent).toBe('Overwrite /var/tmp/restored.img');
    fireEvent.click(within(dialog).getByRole('button', { name: 'Cancel' }));
    expect(screen.queryByRole('dialog')).toBeNull();
    expect(document.activeElement).toBe(submit);
    expect(fake.paramsOf('backupRestore')).toEqual([]);

    fireEvent.click(submit);
    fireEvent.click(screen.getByTestId('restore-confirm'));
    await waitFor(() => expect(fake.paramsOf('backupRestore')).toEqual([{ dir: '/srv/backup/disk1', point: INCR, target: '/var/tmp/restored.img' }]));
    // The form closes and the focus returns to the point's Restore button.
    await waitFor(() => expect(document.activeElement).toBe(within(point).getByTestId('point-restore-button')));
  });

  it('browses a point: shows the NBD URI and the mount commands with copy buttons, and stops', async () => {
    const { fake } = await openCatalog();
    const point = screen.getAllByTestId('catalog-point')[0]!;
    fireEvent.click(within(point).getByTestId('point-browse-button'));
    expect((await within(point).findByTestId('browse-uri')).textContent).toBe('nbd://127.0.0.1:10809/backup-1');
    expect(within(point).getByTestId('browse-mount-hint').textContent).toBe('nbdfuse /tmp/b nbd://127.0.0.1:10809/backup-1 &\nmount -o ro /dev/loop0 /mnt');
    expect(within(point).getByRole('button', { name: 'Copy the NBD URI' })).toBeTruthy();
    expect(within(point).getByRole('button', { name: 'Copy the mount commands' })).toBeTruthy();
    expect(fake.paramsOf('backupExport')).toEqual([{ dir: '/srv/backup/disk1', point: FULL }]);
    fireEvent.click(within(point).getByTestId('browse-stop'));
    await waitFor(() => expect(within(point).queryByTestId('browse-panel')).toBeNull());
    expect(fake.paramsOf('backupUnexport')).toEqual([{ name: 'backup-1' }]);
  });

  it('shows the error of a folder that cannot be read', async () => {
    renderApp({ backupCatalog: () => ({ ok: false, error: { code: 'ENOENT', message: 'there is no folder /srv/nothing' } }) });
    fireEvent.click(screen.getByRole('button', { name: 'Catalog' }));
    fireEvent.change(screen.getByTestId('catalog-dir'), { target: { value: '/srv/nothing' } });
    fireEvent.click(screen.getByTestId('catalog-load'));
    expect((await screen.findByTestId('catalog-error')).textContent).toMatch(/ENOENT: there is no folder \/srv\/nothing/);
  });
});
