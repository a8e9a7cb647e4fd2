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
    await waitFor(() => expect(screen.getByTestId('lab-disk-size-error').textContent).toBe('The size can be at most 8388607 GiB, not 10000000000.'));
    expect(fake.calls.some((c) => c.method === 'createLabDisk')).toBe(false);
  });

  it('refuses zero and negative sizes (past the browser\'s own min check)', async () => {
    const { fake } = renderApp({ listDevices: () => ok([device('disk1')]) });
    await screen.findAllByTestId('device-row');
    for (const value of ['0', '-5']) {
      fireEvent.change(screen.getByTestId('lab-disk-size'), { target: { value } });
      fireEvent.click(screen.getByTestId('create-lab-disk'));
      await waitFor(() => expect(screen.getByTestId('lab-disk-size-error').textContent).toBe(`The size must be more than 0 MiB, not ${value}.`));
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

  it('a size that is not whole 512-byte sectors is refused in the field\'s unit, naming the nearest sizes, never rounded', async () => {
    const { fake } = renderApp({ listDevices: () => ok([device('disk1')]) });
    await screen.findAllByTestId('device-row');
    fireEvent.change(screen.getByTestId('lab-disk-size'), { target: { value: '0.1' } });
    fireEvent.click(screen.getByTestId('create-lab-disk'));
    expect((await screen.findByTestId('lab-disk-size-error')).textContent).toBe(
      '0.1 MiB is not a whole number of 512-byte sectors; the nearest that are: 0.099609375 MiB or 0.10009765625 MiB.',
    );
    expect(screen.getByTestId('lab-disk-size').getAttribute('aria-describedby')).toBe('lab-disk-size-error');
    expect(fake.calls.some((c) => c.method === 'createLabDisk')).toBe(false);
  });

  it('a name the helper would refuse, or one a device has, is refused next to the name field', async () => {
    const { fake } = renderApp({ listDevices: () => ok([device('disk1')]) });
    await screen.findAllByTestId('device-row');
    const cases: [string, string][] = [
      ['my disk', '"my disk" cannot be a name: use letters, digits, ".", "_" and "-", starting with a letter or digit (e.g. disk2).'],
      ['disk1', 'A device named disk1 exists already; disk2 is free.'],
      ['', 'Enter a name, e.g. disk2.'],
    ];
    for (const [value, text] of cases) {
      fireEvent.change(screen.getByTestId('lab-disk-name'), { target: { value } });
      fireEvent.click(screen.getByTestId('create-lab-disk'));
      await waitFor(() => expect(screen.getByTestId('lab-disk-name-error').textContent).toBe(text));
    }
    expect(fake.calls.some((c) => c.method === 'createLabDisk')).toBe(false);
  });
});
