// @vitest-environment jsdom
import { cleanup, fireEvent, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { err, ok } from '../../../../app/shared/result.js';
import { MiB, device, snapshot } from '../../fixtures.js';
import { renderApp } from '../../render-app.js';

afterEach(cleanup);

describe('Snapshots screen: the New snapshot panel', () => {
  it('links to the screens of what is missing and moves the focus there', async () => {
    const { store } = renderApp({ listDevices: () => ok([device('disk1')]) });
    fireEvent.click(screen.getByRole('button', { name: 'Snapshots' }));
    expect(screen.getByTestId('create-storage').textContent).toMatch(/not allocated/);
    fireEvent.click(screen.getByTestId('link-storage'));
    expect(store.getState().screen).toBe('storage');
    await waitFor(() => expect(document.activeElement?.id).toBe('main'));
    expect(screen.getByRole('heading', { level: 2 }).textContent).toBe('Difference storage');
    store.getState().openScreen('snapshots');
    fireEvent.click(await screen.findByTestId('link-devices'));
    expect(store.getState().screen).toBe('devices');
  });

  it('after a storage error keeps the choices and offers to choose another directory', async () => {
    const { fake, store } = renderApp({ listDevices: () => ok([device('disk1')]) });
    await screen.findAllByTestId('device-row');
    store.getState().toggleDevice('disk1');
    expect(store.getState().allocate('/missing', 8 * MiB)).toBeNull();
    fake.handlers.snapshotCreate = () => err('ENOENT', 'Directory for the difference storage does not exist: /missing.');
    fireEvent.click(screen.getByRole('button', { name: 'Snapshots' }));
    fireEvent.click(screen.getByRole('button', { name: 'Create snapshot' }));
    const hint = await screen.findByTestId('create-storage-hint');
    expect(screen.getByTestId('form-error').textContent).toMatch(/ENOENT/);
    expect(store.getState().allocation).toEqual({ directory: '/missing', limitBytes: 8 * MiB });
    expect(store.getState().selectedDevices).toEqual(['disk1']);
    fireEvent.click(within(hint).getByRole('button', { name: 'Choose another directory' }));
    expect(store.getState().screen).toBe('storage');
    // The storage screen still shows the allocation to change.
    expect(screen.getByTestId('allocation').textContent).toMatch(/up to 8 MiB in \/missing/);
  });

  it('shows the work under way on the Create button', async () => {
    let release: () => void = () => {};
    const { fake, store } = renderApp({ listDevices: () => ok([device('disk1')]) });
    await screen.findAllByTestId('device-row');
    store.getState().toggleDevice('disk1');
    store.getState().allocate('/var/tmp', 8 * MiB);
    let calls = 0;
    fake.handlers.snapshotCreate = () =>
      new Promise((resolve) => {
        calls++;
        release = () => resolve(ok({ snapshotId: 's1' }));
      });
    fireEvent.click(screen.getByRole('button', { name: 'Snapshots' }));
    fireEvent.click(screen.getByRole('button', { name: 'Create snapshot' }));
    const busy = await screen.findByRole('button', { name: 'Creating snapshot…' });
    // Unavailable but still focusable (aria-disabled, not disabled): a second press does nothing.
    expect(busy.getAttribute('aria-disabled')).toBe('true');
    expect((busy as HTMLButtonElement).disabled).toBe(false);
    fireEvent.click(busy);
    expect(calls).toBe(1);
    release();
    await screen.findByRole('button', { name: 'Create snapshot' });
  });

  it('creates read-only images unless Writable images is ticked, and each card says which', async () => {
    const { fake, store } = renderApp({ listDevices: () => ok([device('disk1'), device('disk2')]) });
    await screen.findAllByTestId('device-row');
    store.getState().toggleDevice('disk1');
    store.getState().allocate('/var/tmp', 8 * MiB);
    fake.handlers.snapshotCreate = () => ok({ snapshotId: 's1' });
    fake.handlers.listSnapshots = () => ok([]);
    fireEvent.click(screen.getByRole('button', { name: 'Snapshots' }));
    const box = screen.getByLabelText('Writable images') as HTMLInputElement;
    expect(box.checked).toBe(false);
    expect(screen.getByTestId('create-writable-images-note').textContent).toMatch(/read-only/);
    fireEvent.click(screen.getByRole('button', { name: 'Create snapshot' }));
    await waitFor(() => expect(fake.calls.filter((c) => c.method === 'snapshotCreate')).toHaveLength(1));
    expect(fake.calls.find((c) => c.method === 'snapshotCreate')?.params).toMatchObject({ devices: ['disk1'], writableImages: false });

    fireEvent.click(box);
    expect(screen.getByTestId('create-writable-images-note').textContent).toMatch(/may then differ from the moment of the take/);
    await screen.findByRole('button', { name: 'Create snapshot' });
    fireEvent.click(screen.getByRole('button', { name: 'Create snapshot' }));
    await waitFor(() => expect(fake.calls.filter((c) => c.method === 'snapshotCreate')).toHaveLength(2));
    expect(fake.calls.filter((c) => c.method === 'snapshotCreate')[1]?.params).toMatchObject({ writableImages: true });

    fake.handlers.listSnapshots = () => ok([snapshot('s1', ['disk1']), snapshot('s2', ['disk2'], { writableImages: true })]);
    await store.getState().refreshSnapshots();
    const cards = await screen.findAllByTestId('snapshot-row');
    expect(within(cards[0] as HTMLElement).getByTestId('snapshot-images-mode').textContent).toMatch(/^Images: read-only\./);
    expect(within(cards[1] as HTMLElement).getByTestId('snapshot-images-mode').textContent).toMatch(/^Images: writable\./);
  });
});
