// @vitest-environment jsdom
import { act, cleanup, fireEvent, screen, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { encodeBase64 } from '../../../../app/shared/base64.js';
import { ok } from '../../../../app/shared/result.js';
import { device } from '../../fixtures.js';
import { renderApp } from '../../render-app.js';

beforeEach(() => {
  vi.spyOn(HTMLCanvasElement.prototype, 'getContext').mockReturnValue(null);
});

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
});

describe('Heatmap screen', () => {
  it('lets the user clear the N field and type a new number (it does not snap back to the default meanwhile)', async () => {
    const map = new Uint8Array(100);
    map[5] = 3;
    map[6] = 2;
    const { store } = renderApp({
      listDevices: () => ok([device('disk1', { tracked: true })]),
      cbtMap: () =>
        ok({
          device: 'disk1',
          capacityBytes: 100 * 65536,
          blockSize: 65536,
          blockCount: 100,
          generationId: 'g',
          changesNumber: 4,
          table: 'snapshot',
          activeNumber: 5,
          encoding: 'base64',
          data: encodeBase64(map),
        }),
    });
    await screen.findAllByTestId('device-row');
    fireEvent.click(screen.getByRole('button', { name: 'CBT heatmap' }));
    await screen.findByTestId('predicted-size');
    const field = screen.getByLabelText('N (change number)') as HTMLInputElement;
    // Default: changes since the last take, N = 4 - 1.
    expect(field.value).toBe('3');
    field.focus();
    fireEvent.change(field, { target: { value: '' } });
    expect(field.value).toBe('');
    fireEvent.change(field, { target: { value: '2' } });
    expect(field.value).toBe('2');
    expect(store.getState().sinceN).toBe(2);
    expect(screen.getByTestId('predicted-size').getAttribute('data-bytes')).toBe(String(65536));
    // N reset by the store (a new generation): the field shows the N in use, not the stale text.
    act(() => store.getState().setSinceN(null));
    expect(field.value).toBe('3');
    fireEvent.change(field, { target: { value: '2' } });
    expect(field.value).toBe('2');
    // Left empty: back to the default once the field is left.
    fireEvent.change(field, { target: { value: '' } });
    fireEvent.blur(field);
    expect(field.value).toBe('3');
    // A number no block holds, or out of range: an error next to the field naming the numbers
    // that exist, never a silent clamp; the N in use stays.
    field.focus();
    fireEvent.change(field, { target: { value: '2' } });
    fireEvent.change(field, { target: { value: '999' } });
    expect(store.getState().sinceN).toBe(2);
    expect(screen.getByTestId('heatmap-since-n-error').textContent).toBe('No block has change number 999; N is 0 or one of the change numbers in the map: 2, 3.');
    fireEvent.change(field, { target: { value: '1' } });
    expect(screen.getByTestId('heatmap-since-n-error').textContent).toMatch(/No block has change number 1;/);
    fireEvent.blur(field);
    expect(field.value).toBe('1');
    fireEvent.change(field, { target: { value: '3' } });
    expect(screen.queryByTestId('heatmap-since-n-error')).toBeNull();
    expect(store.getState().sinceN).toBe(3);
    // The legend lists only numbers present above N: none above 3 here, so just "0: not written" and the cut
    expect(within(screen.getByTestId('heatmap-legend')).queryByText(/^4/)).toBeNull();
  });
});
