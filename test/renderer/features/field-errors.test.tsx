// @vitest-environment jsdom
/** Each bad value shows its own error next to its field, in the field's unit, and nothing is sent with another value. */
import { cleanup, fireEvent, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { ok } from '../../../app/shared/result.js';
import { device, filesystem } from '../fixtures.js';
import { renderApp } from '../render-app.js';

afterEach(cleanup);

const MiB = 1024 * 1024;

describe('Storage screen fields', () => {
  it('an invalid limit keeps its error (it is never replaced by the suggested limit) and Allocate refuses it', async () => {
    const { store } = renderApp({ listDevices: () => ok([device('disk1')]), listFilesystems: () => ok([filesystem('/')]), setStorageAllocation: (p) => ok(p) });
    store.getState().toggleDevice('disk1');
    fireEvent.click(await screen.findByRole('button', { name: /^Difference storage/ }));
    fireEvent.change(screen.getByTestId('storage-dir'), { target: { value: '/var/tmp' } });
    const limit = screen.getByTestId('storage-limit');
    fireEvent.change(limit, { target: { value: '0' } });
    expect(screen.getByTestId('storage-limit-error').textContent).toBe('The limit must be more than 0 MiB, not 0.');
    expect((limit as HTMLInputElement).value).toBe('0');
    fireEvent.change(limit, { target: { value: '0.3' } });
    expect(screen.getByTestId('storage-limit-error').textContent).toBe('0.3 MiB is not a whole number of 512-byte sectors; the nearest that are: 0.2998046875 MiB or 0.30029296875 MiB.');
    expect(limit.getAttribute('aria-invalid')).toBe('true');
    fireEvent.click(screen.getByTestId('allocate'));
    expect(store.getState().allocation).toBeNull();
    fireEvent.change(limit, { target: { value: '96' } });
    expect(screen.queryByTestId('storage-limit-error')).toBeNull();
    fireEvent.click(screen.getByTestId('allocate'));
    expect(store.getState().allocation).toEqual({ directory: '/var/tmp', limitBytes: 96 * MiB });
  });

  it('a relative directory is refused next to the directory field, as typed', async () => {
    const { store } = renderApp({ listDevices: () => ok([device('disk1')]) });
    fireEvent.click(await screen.findByRole('button', { name: /^Difference storage/ }));
    fireEvent.change(screen.getByTestId('storage-dir'), { target: { value: 'var/tmp' } });
    fireEvent.change(screen.getByTestId('storage-limit'), { target: { value: '64' } });
    fireEvent.click(screen.getByTestId('allocate'));
    expect(screen.getByTestId('storage-dir-error').textContent).toBe('The storage directory must be an absolute path starting with /, not "var/tmp".');
    expect(store.getState().allocation).toBeNull();
  });
});

describe('Write workload rate', () => {
  it('zero, text and more than the helper takes are refused next to the rate, in MiB/s, without starting', async () => {
    const { fake } = renderApp({ listDevices: () => ok([device('disk1')]) });
    await screen.findAllByTestId('device-row');
    const cases: [string, string][] = [
      ['0', 'The rate must be more than 0 MiB/s, not 0.'],
      ['fast', '"fast" is not a number: enter the rate in MiB/s with digits and at most one decimal point (e.g. 64 or 1.5).'],
      ['200000', 'The rate can be at most 100000 MiB/s, not 200000.'],
    ];
    for (const [value, text] of cases) {
      fireEvent.change(screen.getByTestId('workload-rate'), { target: { value } });
      fireEvent.click(screen.getByTestId('start-workload'));
      await waitFor(() => expect(screen.getByTestId('workload-rate-error').textContent).toBe(text));
    }
    expect(fake.calls.some((c) => c.method === 'workloadStart')).toBe(false);
  });
});

describe('Snapshot name', () => {
  it('a name with a space at the end or too long is refused as typed (never trimmed or cut), and Create is not sent', async () => {
    const { fake, store } = renderApp({ listDevices: () => ok([device('disk1')]) });
    store.getState().toggleDevice('disk1');
    store.setState({ allocation: { directory: '/var/tmp', limitBytes: 64 * MiB } });
    fireEvent.click(await screen.findByRole('button', { name: /^Snapshots/ }));
    const name = screen.getByTestId('create-name');
    fireEvent.change(name, { target: { value: 'nightly ' } });
    expect(screen.getByTestId('create-name-error').textContent).toBe('The name starts or ends with a space; remove it (the name is kept as typed).');
    fireEvent.change(name, { target: { value: 'n'.repeat(70) } });
    expect((name as HTMLInputElement).value).toHaveLength(70);
    expect(screen.getByTestId('create-name-error').textContent).toBe('A snapshot name has at most 64 characters, this one 70.');
    fireEvent.click(screen.getByTestId('create-snapshot'));
    expect(fake.calls.some((c) => c.method === 'snapshotCreate')).toBe(false);
  });
});
