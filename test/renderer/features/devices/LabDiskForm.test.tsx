// @vitest-environment jsdom
import { cleanup, fireEvent, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { ok } from '../../../../app/shared/result.js';
import { device } from '../../fixtures.js';
import { renderApp } from '../../render-app.js';

afterEach(cleanup);

describe('Lab disk form', () => {
  it('refuses a size beyond what the contract carries, with a plain message, without calling createLabDisk', async () => {
    const { fake } = renderApp({ listDevices: () => ok([device('disk1')]) });
    await screen.findAllByTestId('device-row');
    fireEvent.change(screen.getByTestId('lab-disk-size'), { target: { value: '10000000000' } });
    fireEvent.change(screen.getByLabelText('Unit'), { target: { value: 'GiB' } });
    fireEvent.click(screen.getByTestId('create-lab-disk'));
    await waitFor(() => expect(screen.getByTestId('form-error').textContent).toMatch(/EINVAL: Enter a size of at most 8 PiB/));
    expect(fake.calls.some((c) => c.method === 'createLabDisk')).toBe(false);
  });

  it('refuses zero and negative sizes (past the browser\'s own min check)', async () => {
    const { fake } = renderApp({ listDevices: () => ok([device('disk1')]) });
    await screen.findAllByTestId('device-row');
    for (const value of ['0', '-5']) {
      fireEvent.change(screen.getByTestId('lab-disk-size'), { target: { value } });
      const form = screen.getByTestId('create-lab-disk').closest('form');
      if (form === null) throw new Error('no form');
      fireEvent.submit(form);
      await waitFor(() => expect(screen.getByTestId('form-error').textContent).toMatch(/at least 512 bytes/));
    }
    expect(fake.calls.some((c) => c.method === 'createLabDisk')).toBe(false);
  });

  it('creates a disk of the size typed, in whole sectors', async () => {
    const { fake } = renderApp({ listDevices: () => ok([device('disk1')]), createLabDisk: (p) => ok(device(p.name ?? 'x')) });
    await screen.findAllByTestId('device-row');
    fireEvent.change(screen.getByTestId('lab-disk-size'), { target: { value: '5' } });
    fireEvent.change(screen.getByLabelText('Unit'), { target: { value: 'GiB' } });
    fireEvent.click(screen.getByTestId('create-lab-disk'));
    await waitFor(() => expect(fake.calls.find((c) => c.method === 'createLabDisk')?.params).toEqual({ name: 'disk2', sizeBytes: 5 * 1024 ** 3 }));
  });
});
