// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { encodeBase64 } from '../../app/shared/base64.js';
import { ok } from '../../app/shared/result.js';
import type { AppStatus } from '../../app/shared/types.js';
import { App } from '../../renderer/src/App.js';
import { createAppStore } from '../../renderer/src/store/app-store.js';
import type { AppStore } from '../../renderer/src/store/app-store.js';
import { StoreProvider } from '../../renderer/src/store/context.js';
import { wireEvents } from '../../renderer/src/store/wire-events.js';
import { createFakeApi } from './fake-api.js';
import type { FakeApi } from './fake-api.js';
import { GiB, MiB, device, filesystem, snapshot } from './fixtures.js';

const status: AppStatus = {
  driver: 'embedded',
  driverVersion: { major: 1, minor: 0, revision: 0, build: 0 },
  appVersion: '0.1.0',
  protocolVersion: 1,
  capabilities: ['cbt-active-table'],
  helper: { state: 'connected' },
};

function setup(): { fake: FakeApi; store: AppStore } {
  const fake = createFakeApi({
    getStatus: () => ok(status),
    listDevices: () => ok([device('disk1', { tracked: true }), device('disk2')]),
    listFilesystems: () => ok([filesystem('/'), filesystem('/var/tmp', { source: 'tmpfs', totalBytes: 4 * GiB, freeBytes: 3 * GiB })]),
    listSnapshots: () => ok([]),
  });
  const store = createAppStore(fake.api, { now: () => 7 });
  wireEvents(fake.api, store);
  render(
    <StoreProvider store={store}>
      <App />
    </StoreProvider>,
  );
  return { fake, store };
}

beforeEach(() => {
  // jsdom has no canvas: the heatmap copes with a null 2D context.
  vi.spyOn(HTMLCanvasElement.prototype, 'getContext').mockReturnValue(null);
});

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
});

describe('App', () => {
  it('lists devices with their state and NBD URI, and shows the helper state', async () => {
    setup();
    const rows = await screen.findAllByTestId('device-row');
    expect(rows).toHaveLength(2);
    expect(within(rows[0] as HTMLElement).getByTestId('device-state').textContent).toBe('Tracked');
    expect(within(rows[1] as HTMLElement).getByTestId('device-nbd-uri').textContent).toBe('nbd://127.0.0.1:10809/disk2');
    await waitFor(() => expect(screen.getByTestId('helper-state').textContent).toMatch(/connected · embedded engine 1\.0\.0\.0/));
    expect(screen.getByRole('button', { name: 'Create lab disk' })).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Start workload' })).toBeTruthy();
  });

  it('creates a lab disk from the form', async () => {
    const { fake } = setup();
    fake.handlers.createLabDisk = (p) => ok(device(p.name ?? 'x'));
    fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'lab7' } });
    fireEvent.change(screen.getByLabelText('Size'), { target: { value: '64' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create lab disk' }));
    await waitFor(() => expect(fake.calls.some((c) => c.method === 'createLabDisk')).toBe(true));
    expect(fake.calls.find((c) => c.method === 'createLabDisk')?.params).toEqual({ name: 'lab7', sizeBytes: 64 * MiB });
  });

  it('suggests the next free lab disk name and keeps both forms\' values when the Devices screen is reopened', async () => {
    const { fake } = setup();
    await screen.findAllByTestId('device-row');
    // disk1 and disk2 exist: the form offers disk3, not a taken name.
    expect((screen.getByLabelText('Name') as HTMLInputElement).value).toBe('disk3');
    fireEvent.change(screen.getByLabelText('Size'), { target: { value: '64' } });
    fireEvent.change(screen.getByLabelText('Unit'), { target: { value: 'GiB' } });
    fireEvent.change(screen.getByTestId('workload-device'), { target: { value: 'disk2' } });
    fireEvent.change(screen.getByTestId('workload-rate'), { target: { value: '9' } });
    fireEvent.change(screen.getByTestId('workload-pattern'), { target: { value: 'hotspot' } });
    fireEvent.click(screen.getByRole('button', { name: 'CBT heatmap' }));
    expect(screen.queryByLabelText('Name')).toBeNull();
    fireEvent.click(screen.getByRole('button', { name: 'Devices' }));
    expect((screen.getByLabelText('Name') as HTMLInputElement).value).toBe('disk3');
    expect((screen.getByLabelText('Size') as HTMLInputElement).value).toBe('64');
    expect((screen.getByLabelText('Unit') as HTMLSelectElement).value).toBe('GiB');
    expect((screen.getByTestId('workload-device') as HTMLSelectElement).value).toBe('disk2');
    expect((screen.getByTestId('workload-rate') as HTMLInputElement).value).toBe('9');
    expect((screen.getByTestId('workload-pattern') as HTMLSelectElement).value).toBe('hotspot');
    // After creating disk3 the suggestion moves on to disk4.
    fake.handlers.createLabDisk = (p) => ok(device(p.name ?? 'x'));
    fake.handlers.listDevices = () => ok([device('disk1', { tracked: true }), device('disk2'), device('disk3')]);
    fireEvent.click(screen.getByRole('button', { name: 'Create lab disk' }));
    await waitFor(() => expect((screen.getByLabelText('Name') as HTMLInputElement).value).toBe('disk4'));
    expect(fake.calls.find((c) => c.method === 'createLabDisk')?.params).toEqual({ name: 'disk3', sizeBytes: 64 * GiB });
  });

  it('walks select -> allocate -> create -> take -> destroy (with a confirmation naming the devices)', async () => {
    const { fake } = setup();
    await screen.findAllByTestId('device-row');
    fireEvent.click(screen.getByLabelText('Select disk1'));
    fireEvent.click(screen.getByLabelText('Select disk2'));

    fireEvent.click(screen.getByRole('button', { name: 'Difference storage' }));
    await screen.findAllByTestId('filesystem-row');
    // Random 64 KiB writes at the default 4 MiB/s for 10 min touch nearly every 256 KiB chunk of 2 × 1 GiB.
    expect(screen.getByTestId('suggested-limit').textContent).toMatch(/Suggested: 2 GiB/);
    fireEvent.click(screen.getByLabelText('Use /var/tmp'));
    expect((screen.getByLabelText('Storage directory') as HTMLInputElement).value).toBe('/var/tmp');
    fireEvent.click(screen.getByRole('button', { name: 'Allocate' }));
    expect(screen.getByTestId('allocation').textContent).toMatch(/2 GiB in \/var\/tmp/);

    let snaps = [snapshot('s1', ['disk1', 'disk2'])];
    fake.handlers.snapshotCreate = () => ok({ snapshotId: 's1' });
    fake.handlers.listSnapshots = () => ok(snaps);
    fireEvent.click(screen.getByRole('button', { name: 'Snapshots' }));
    fireEvent.click(screen.getByRole('button', { name: 'Create snapshot' }));
    await screen.findByTestId('snapshot-row');
    const created = fake.calls.find((c) => c.method === 'snapshotCreate');
    expect(created?.params).toEqual({
      devices: ['disk1', 'disk2'],
      storagePath: '/var/tmp/blksnap-diff-7.img',
      limitBytes: 2 * GiB,
      writableImages: false,
    });
    expect(screen.getByTestId('snapshot-state').textContent).toBe('Created (not taken)');

    fake.handlers.snapshotTake = () => {
      snaps = [
        snapshot('s1', ['disk1', 'disk2'], {
          state: 'taken',
          devices: [
            { device: 'disk1', errorCode: 0, errorName: '', image: 'blksnap-image0', imageNbdUri: 'nbd://127.0.0.1:10809/blksnap-image0' },
            { device: 'disk2', errorCode: -28, errorName: 'ENOSPC', image: 'blksnap-image1', imageNbdUri: null },
          ],
        }),
      ];
      return ok(null);
    };
    fireEvent.click(screen.getByRole('button', { name: 'Take' }));
    await waitFor(() => expect(screen.getByTestId('snapshot-state').textContent).toBe('Taken'));
    expect(screen.getAllByTestId('snapshot-image').map((e) => e.textContent)).toEqual(['blksnap-image0', 'blksnap-image1']);
    expect(screen.getAllByTestId('snapshot-error-code').map((e) => e.textContent)).toEqual(['0 (none)', '-28 ENOSPC']);
    expect(screen.getByTestId('image-nbd-uri').textContent).toBe('nbd://127.0.0.1:10809/blksnap-image0');

    fake.handlers.snapshotDestroy = () => {
      snaps = [];
      return ok(null);
    };
    fireEvent.click(screen.getByRole('button', { name: 'Destroy' }));
    const dialog = screen.getByRole('dialog');
    expect(within(dialog).getByTestId('destroy-devices').textContent).toBe('disk1, disk2');
    // Only the dialog is reachable while it is open.
    expect(screen.getAllByRole('button', { name: 'Destroy' })).toHaveLength(1);
    fireEvent.keyDown(dialog, { key: 'Escape' });
    expect(screen.queryByRole('dialog')).toBeNull();
    expect(fake.calls.some((c) => c.method === 'snapshotDestroy')).toBe(false);

    fireEvent.click(screen.getByRole('button', { name: 'Destroy' }));
    fireEvent.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Destroy' }));
    await waitFor(() => expect(screen.queryByTestId('snapshot-row')).toBeNull());
    expect(fake.calls.find((c) => c.method === 'snapshotDestroy')?.params).toEqual({ snapshotId: 's1' });
  });

  it('collects events while another screen is open and raises an alert banner', async () => {
    const { fake } = setup();
    await screen.findAllByTestId('device-row');
    act(() => {
      fake.emit('onSnapshotEvent', { code: 'low_free_space', snapshotId: 's1', timeMs: 1000, requestedSectors: 2048 });
    });
    expect(screen.queryByRole('alert')).toBeNull();
    act(() => {
      fake.emit('onSnapshotEvent', {
        code: 'corrupted',
        snapshotId: 's1',
        timeMs: 2000,
        device: 'disk1',
        devMajor: 259,
        devMinor: 1,
        errCode: -28,
      });
    });
    expect(screen.getByRole('alert').textContent).toMatch(/disk1 is corrupted \(ENOSPC\)/);
    fireEvent.click(screen.getByRole('button', { name: 'Open the timeline' }));
    const rows = screen.getAllByTestId('event-row');
    expect(rows).toHaveLength(2);
    expect(rows[0]?.getAttribute('data-code')).toBe('corrupted'); // newest first
    expect(within(rows[0] as HTMLElement).getByText('-28 ENOSPC')).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Dismiss' }));
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('shows the heatmap facts: generation id and predicted incremental size, live by default and for the last snapshot', async () => {
    const { fake } = setup();
    // Snapshot table (as of take 2): blocks changed in 1 and 2.
    const snapshotMap = new Uint8Array(1000);
    snapshotMap[3] = 1;
    snapshotMap[10] = 2;
    snapshotMap[11] = 2;
    // Active table: the same, plus blocks 20..22 written since take 2 (active number 3).
    const activeMap = snapshotMap.slice();
    activeMap[20] = 3;
    activeMap[21] = 3;
    activeMap[22] = 3;
    fake.handlers.cbtMap = (params) =>
      ok({
        device: 'disk1',
        capacityBytes: 1000 * 65536,
        blockSize: 65536,
        blockCount: 1000,
        generationId: '0f1e2d3c-0000-4000-8000-000000000001',
        changesNumber: 2,
        table: params.table ?? 'snapshot',
        activeNumber: 3,
        encoding: 'base64',
        data: encodeBase64(params.table === 'active' ? activeMap : snapshotMap),
      });
    await screen.findAllByTestId('device-row');
    fireEvent.click(screen.getByRole('button', { name: 'CBT heatmap' }));
    expect((await screen.findByTestId('generation-id')).textContent).toBe('0f1e2d3c-0000-4000-8000-000000000001');
    // Live (the helper has the capability): default N = the last take's number 2, so blocks 20..22.
    expect((screen.getByTestId('heatmap-view-live') as HTMLInputElement).checked).toBe(true);
    expect(screen.getByTestId('active-number').textContent).toBe('3');
    expect(screen.getByTestId('predicted-size').getAttribute('data-bytes')).toBe(String(3 * 65536));
    expect(screen.getByTestId('legend-newest').textContent).toBe('3: since last snapshot');
    expect(fake.calls.filter((c) => c.method === 'cbtMap').at(-1)?.params).toEqual({ device: 'disk1', table: 'active' });
    fireEvent.change(screen.getByLabelText('N (change number)'), { target: { value: '0' } });
    expect(screen.getByTestId('predicted-size').getAttribute('data-bytes')).toBe(String(6 * 65536));
    // The snapshot table: default N = 2 - 1 = 1, blocks 10 and 11.
    fireEvent.click(screen.getByTestId('heatmap-view-snapshot'));
    await waitFor(() => expect(screen.queryByTestId('active-number')).toBeNull());
    await screen.findByTestId('predicted-size');
    expect(screen.getByTestId('predicted-size').getAttribute('data-bytes')).toBe(String(2 * 65536));
    expect(screen.getByTestId('legend-newest').textContent).toBe('2 (last snapshot)');
    expect(fake.calls.filter((c) => c.method === 'cbtMap').at(-1)?.params).toEqual({ device: 'disk1', table: 'snapshot' });
    fireEvent.change(screen.getByLabelText('N (change number)'), { target: { value: '0' } });
    expect(screen.getByTestId('predicted-size').getAttribute('data-bytes')).toBe(String(3 * 65536));
    expect(screen.getByTestId('heatmap-canvas').getAttribute('data-cell-count')).toBe('1000');
    fireEvent.click(screen.getByRole('button', { name: 'Zoom in' }));
    expect(screen.getByTestId('heatmap-canvas').getAttribute('data-cell-count')).toBe('500');
  });

  it('opens the Backup wizard at its first step, devices', () => {
    setup();
    fireEvent.click(screen.getByRole('button', { name: 'Backup' }));
    expect(screen.getByTestId('wizard-step-devices')).toBeTruthy();
    expect(screen.getByRole('heading', { level: 3 }).textContent).toBe('Step 1 of 8: Devices');
  });

  it('moves through the sidebar with the arrow keys', () => {
    setup();
    const nav = screen.getByRole('navigation', { name: 'Screens' });
    const devices = within(nav).getByRole('button', { name: 'Devices' });
    devices.focus();
    fireEvent.keyDown(devices, { key: 'ArrowDown' });
    expect(document.activeElement?.textContent).toBe('Difference storage');
    fireEvent.keyDown(document.activeElement as Element, { key: 'End' });
    expect(document.activeElement?.textContent).toBe('Catalog');
    expect(devices.getAttribute('aria-current')).toBe('page');
  });
});
