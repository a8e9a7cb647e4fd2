// @vitest-environment jsdom
import { act, cleanup, fireEvent, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { err, ok } from '../../../app/shared/result.js';
import { device } from '../fixtures.js';
import { EMBEDDED_STATUS, renderApp } from '../render-app.js';

afterEach(cleanup);

describe('helper banner', () => {
  it('appears when the helper is lost, keeps form entries, and Reconnect brings the lists back', async () => {
    const { fake } = renderApp({ listDevices: () => ok([device('disk1')]) });
    await screen.findAllByTestId('device-row');
    expect(screen.queryByTestId('helper-banner')).toBeNull();
    fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'typed-name' } });

    act(() => fake.emit('onHelperState', { state: 'lost', message: 'The helper stopped: the connection closed.' }));
    const banner = screen.getByTestId('helper-banner');
    expect(banner.getAttribute('role')).toBe('alert');
    expect(banner.textContent).toMatch(/The helper is not connected\. The helper stopped: the connection closed\./);
    expect(screen.getByTestId('stale-note')).toBeTruthy();
    // Only the banner offers Reconnect (one button, not one per place).
    expect(screen.getAllByRole('button', { name: /Reconnect/ })).toHaveLength(1);

    fake.handlers.reconnect = () => ok(EMBEDDED_STATUS);
    fake.handlers.listDevices = () => ok([device('disk1'), device('disk2')]);
    fireEvent.click(screen.getByRole('button', { name: 'Reconnect' }));
    await waitFor(() => expect(screen.queryByTestId('helper-banner')).toBeNull());
    await waitFor(() => expect(screen.getAllByTestId('device-row')).toHaveLength(2));
    expect(screen.queryByTestId('stale-note')).toBeNull();
    expect((screen.getByLabelText('Name') as HTMLInputElement).value).toBe('typed-name');
  });

  it('stays with the reason when Reconnect fails', async () => {
    const { fake } = renderApp();
    await waitFor(() => expect(screen.getByTestId('helper-state').textContent).toMatch(/connected/));
    act(() => fake.emit('onHelperState', { state: 'lost', message: 'gone' }));
    fake.handlers.reconnect = () => err('HELPER_UNAVAILABLE', 'The helper is not running and could not be started.');
    fireEvent.click(screen.getByRole('button', { name: 'Reconnect' }));
    await waitFor(() => expect(screen.getByTestId('helper-banner').textContent).toMatch(/could not be started/));
    expect(screen.getByTestId('status-line').textContent).toMatch(/Reconnect failed/);
    expect((screen.getByRole('button', { name: 'Reconnect' }) as HTMLButtonElement).disabled).toBe(false);
  });
});
