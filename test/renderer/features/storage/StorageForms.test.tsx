// @vitest-environment jsdom
/**
 * The Storage screen's choice of form: the path field says what it wants for each
 * form, an allocation describes itself in words, and Create snapshot sends the
 * form with the path as it was given (only a new file gets a fresh name).
 */
import { cleanup, fireEvent, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { ok } from '../../../../app/shared/result.js';
import { MiB, device } from '../../fixtures.js';
import { renderApp } from '../../render-app.js';

afterEach(cleanup);

async function allocateWith(formLabel: string, path: string, limitMiB: string): Promise<void> {
  fireEvent.click(screen.getByRole('button', { name: 'Difference storage' }));
  fireEvent.click(within(await screen.findByTestId('storage-form')).getByLabelText(formLabel));
  fireEvent.change(screen.getByTestId('storage-dir'), { target: { value: path } });
  fireEvent.change(screen.getByTestId('storage-limit'), { target: { value: limitMiB } });
  fireEvent.click(screen.getByTestId('allocate'));
}

describe('Storage screen: the form of the difference storage', () => {
  it('a block device: the field asks for one, the allocation says so, create sends the device and the form', async () => {
    const { fake, store } = renderApp({ listDevices: () => ok([device('disk1')]), snapshotCreate: () => ok({ snapshotId: 'id-1' }) });
    await screen.findAllByTestId('device-row');
    store.getState().toggleDevice('disk1');
    await allocateWith('A whole block device', '/dev/sdc', '64');
    expect(screen.getByLabelText('Block device')).toBe(screen.getByTestId('storage-dir'));
    expect(screen.getByTestId('storage-form-hint').textContent).toMatch(/Everything on it is overwritten/);
    expect(screen.getByTestId('allocation').textContent).toBe('Allocated: the whole block device /dev/sdc. Used by the next "Create snapshot".');
    fireEvent.click(screen.getByRole('button', { name: 'Snapshots' }));
    expect(screen.getByTestId('create-storage').textContent).toMatch(/the whole block device \/dev\/sdc/);
    fireEvent.click(screen.getByRole('button', { name: 'Create snapshot' }));
    await waitFor(() => expect(fake.paramsOf('snapshotCreate')).toHaveLength(1));
    expect(fake.paramsOf('snapshotCreate')[0]).toMatchObject({ storagePath: '/dev/sdc', storageForm: 'block-device', limitBytes: 64 * MiB });
    // nothing about a device form is sent to the helper's settings (it keeps directories for new files)
    expect(fake.paramsOf('setStorageAllocation')).toEqual([]);
  });

  it('an unnamed file in a directory: the directory itself is sent, with the form', async () => {
    const { fake, store } = renderApp({ listDevices: () => ok([device('disk1')]), snapshotCreate: () => ok({ snapshotId: 'id-2' }) });
    await screen.findAllByTestId('device-row');
    store.getState().toggleDevice('disk1');
    await allocateWith('An unnamed temporary file in a directory', '/var/tmp', '32');
    expect(screen.getByTestId('allocation').textContent).toMatch(/up to 32 MiB in an unnamed file in \/var\/tmp/);
    fireEvent.click(screen.getByRole('button', { name: 'Snapshots' }));
    fireEvent.click(screen.getByRole('button', { name: 'Create snapshot' }));
    await waitFor(() => expect(fake.paramsOf('snapshotCreate')).toHaveLength(1));
    expect(fake.paramsOf('snapshotCreate')[0]).toMatchObject({ storagePath: '/var/tmp', storageForm: 'directory' });
  });

  it('a new file (the default) gets a fresh name in the directory and no form; a block device outside /dev is refused', async () => {
    const { fake, store } = renderApp({ listDevices: () => ok([device('disk1')]), snapshotCreate: () => ok({ snapshotId: 'id-3' }) });
    await screen.findAllByTestId('device-row');
    store.getState().toggleDevice('disk1');
    expect(store.getState().allocate('/var/tmp/x', 8 * MiB, 'block-device')?.message).toBe('A block device is under /dev (for example /dev/sdc).');
    await allocateWith('A new file in a directory', '/var/tmp', '16');
    fireEvent.click(screen.getByRole('button', { name: 'Snapshots' }));
    fireEvent.click(screen.getByRole('button', { name: 'Create snapshot' }));
    await waitFor(() => expect(fake.paramsOf('snapshotCreate')).toHaveLength(1));
    const sent = fake.paramsOf('snapshotCreate')[0]!;
    expect(sent.storagePath).toMatch(/^\/var\/tmp\/[^/]+$/);
    expect(sent.storagePath).not.toBe('/var/tmp');
    expect(sent.storageForm).toBeUndefined();
  });
});
