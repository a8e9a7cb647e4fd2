// @vitest-environment jsdom
import { cleanup, fireEvent, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { ok } from '../../../../app/shared/result.js';
import type { DeviceEntry } from '../../../../app/shared/types.js';
import { GiB, MiB, device, snapshot } from '../../fixtures.js';
import { renderApp } from '../../render-app.js';

const block = (name: string, sizeBytes: number): DeviceEntry =>
  device(`/dev/${name}`, { name, path: `/dev/${name}`, kind: 'block', type: 'disk', sizeBytes, nbdUri: null, model: '' });

afterEach(cleanup);

describe('Devices screen on the embedded engine', () => {
  it('disables block devices with the reason, and offers to open them with the engine (addImage on the path)', async () => {
    const { fake } = renderApp({ listDevices: () => ok([device('disk1'), block('vda', 256 * GiB), block('zram0', 0)]) });
    await screen.findAllByTestId('device-row');
    const vda = screen.getByLabelText('Select vda') as HTMLInputElement;
    expect(vda.disabled).toBe(true);
    expect(document.getElementById(vda.getAttribute('aria-describedby') ?? '')?.textContent).toMatch(/Not directly with the embedded engine: open it with the engine first/);
    const zram = screen.getByLabelText('Select zram0') as HTMLInputElement;
    expect(zram.disabled).toBe(true);
    expect(document.getElementById(zram.getAttribute('aria-describedby') ?? '')?.textContent).toMatch(/Empty device \(0 B\)/);
    // A 0-byte device is not offered to the engine either.
    expect(screen.getAllByTestId('open-with-engine')).toHaveLength(1);
    expect(screen.getByTestId('selection-summary').textContent).toBe('Tick the devices to snapshot together: 0 of 1 selected.');

    fake.handlers.addImage = (p) => ok(device('vda', { path: p.path, sizeBytes: 256 * GiB }));
    fake.handlers.listDevices = () => ok([device('disk1'), device('vda', { path: '/dev/vda' }), block('vda', 256 * GiB), block('zram0', 0)]);
    fireEvent.click(screen.getByRole('button', { name: 'Open vda with the engine' }));
    await waitFor(() => expect(fake.calls.find((c) => c.method === 'addImage')?.params).toEqual({ path: '/dev/vda' }));
    // Listed once, as the engine device, which can be ticked.
    await waitFor(() => expect(screen.queryByRole('button', { name: 'Open vda with the engine' })).toBeNull());
    expect(screen.getAllByLabelText('Select vda')).toHaveLength(1);
    expect((screen.getByLabelText('Select vda') as HTMLInputElement).disabled).toBe(false);
    expect(screen.getByTestId('status-line').textContent).toBe('/dev/vda opened with the engine as vda: tick vda to snapshot it.');
    // The focus moves from the button that went away to the new row's checkbox.
    await waitFor(() => expect(document.activeElement).toBe(screen.getByLabelText('Select vda')));
  });

  it('offers no "Open with the engine" for a block device something else uses, and says what uses it', async () => {
    const inUse = { ...block('vda', 256 * GiB), blockedBy: ['vda1 is mounted at /', 'vda2 is used as swap'] };
    renderApp({ listDevices: () => ok([device('disk1'), inUse, block('vdb', GiB)]) });
    await screen.findAllByTestId('device-row');
    expect(screen.queryByRole('button', { name: 'Open vda with the engine' })).toBeNull();
    expect(screen.getAllByTestId('open-with-engine').map((b) => b.getAttribute('aria-label'))).toEqual(['Open vdb with the engine']);
    const vda = screen.getByLabelText('Select vda') as HTMLInputElement;
    expect(vda.disabled).toBe(true);
    expect(document.getElementById(vda.getAttribute('aria-describedby') ?? '')?.textContent).toBe(
      'In use, so the engine cannot open it: vda1 is mounted at /; vda2 is used as swap.',
    );
  });

  it('offers the write workload only on lab disks, with a visible warning that it overwrites data', async () => {
    renderApp({ listDevices: () => ok([device('lab1'), device('added', { labDisk: false, path: '/srv/vm.img' }), device('lab2')]) });
    await screen.findAllByTestId('device-row');
    const options = Array.from((screen.getByTestId('workload-device') as HTMLSelectElement).options).map((o) => o.value);
    expect(options).toEqual(['lab1', 'lab2']);
    expect(screen.getByTestId('workload-warning').textContent).toMatch(/Overwrites data: .*only on lab\s+disks created here/);
  });

  it('"Select all" ticks only the devices that can be snapshotted', async () => {
    const { store } = renderApp({ listDevices: () => ok([device('disk1'), block('vda', GiB), device('disk2')]) });
    await screen.findAllByTestId('device-row');
    fireEvent.click(screen.getByLabelText('Select all devices'));
    expect(store.getState().selectedDevices).toEqual(['disk1', 'disk2']);
    expect((screen.getByLabelText('Select all devices') as HTMLInputElement).checked).toBe(true);
  });

  it('says what to do first when there is no engine device yet, with the first-run steps', async () => {
    renderApp({ listDevices: () => ok([block('vda', GiB)]) });
    await screen.findByTestId('devices-empty');
    const guide = screen.getByTestId('getting-started');
    expect(within(guide).getByTestId('step-devices').textContent).toMatch(/Create a lab disk/);
    expect(screen.getByTestId('selection-summary').textContent).toBe('No device can be snapshotted yet.');
    fireEvent.click(screen.getByRole('button', { name: 'Go to the lab disk form' }));
    expect(document.activeElement?.id).toBe('lab-disk-name');
  });

  it('keeps the typed values after a failed lab disk create, and shows the error', async () => {
    const { fake } = renderApp({ listDevices: () => ok([device('disk1')]) });
    await screen.findAllByTestId('device-row');
    fake.handlers.createLabDisk = () => ({ ok: false, error: { code: 'ENOSPC', message: 'No space left on the lab directory\'s filesystem.' } });
    fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'big' } });
    fireEvent.change(screen.getByLabelText('Size'), { target: { value: '64' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create lab disk' }));
    expect((await screen.findByTestId('form-error')).textContent).toMatch(/ENOSPC/);
    expect((screen.getByLabelText('Name') as HTMLInputElement).value).toBe('big');
    expect((screen.getByLabelText('Size') as HTMLInputElement).value).toBe('64');
    expect(fake.calls.find((c) => c.method === 'createLabDisk')?.params).toEqual({ name: 'big', sizeBytes: 64 * MiB });
  });

  it('a name whose image file exists (EEXIST) is never offered again: the error is next to the name, the next free one filled in', async () => {
    const { fake } = renderApp({ listDevices: () => ok([device('disk1')]) });
    await screen.findAllByTestId('device-row');
    fake.handlers.createLabDisk = (p) => (p.name === 'disk2' ? { ok: false, error: { code: 'EEXIST', message: 'disk2.img already exists.' } } : ok(device(p.name ?? 'x')));
    expect((screen.getByLabelText('Name') as HTMLInputElement).value).toBe('disk2');
    fireEvent.click(screen.getByRole('button', { name: 'Create lab disk' }));
    expect((await screen.findByTestId('lab-disk-name-error')).textContent).toBe(
      'The image file of disk2 exists already (a lab disk removed earlier?); the first free name, disk3, is filled in.',
    );
    expect((screen.getByLabelText('Name') as HTMLInputElement).value).toBe('disk3');
    expect(screen.getByLabelText('Name').getAttribute('aria-invalid')).toBe('true');
  });
});

describe('Devices screen: the lsblk tree', () => {
  const tree = (): DeviceEntry[] => [
    device('disk1'),
    block('sda', 256 * GiB),
    { ...block('sda1', 255 * GiB), type: 'part', parents: ['/dev/sda'], fstype: 'ext4', label: 'data' },
    { ...block('vg-home', 100 * GiB), type: 'lvm', parents: ['/dev/sda1'] },
    { ...block('vda', 16 * GiB), blockedBy: ['held by vda1'] },
    { ...block('vda1', 16 * GiB), type: 'part', parents: ['/dev/vda'], blockedBy: ['mounted at /'] },
    ...Array.from({ length: 3 }, (_, i) => ({ ...block(`loop${i}`, 0), type: 'loop' })),
  ];

  it('draws partitions and volumes under their disk, with labels and types', async () => {
    renderApp({ listDevices: () => ok(tree()) });
    await screen.findAllByTestId('device-row');
    const visible = screen.getAllByTestId('device-row').filter((r) => !r.hidden);
    expect(visible.map((r) => [r.getAttribute('data-device-id'), r.getAttribute('data-depth')])).toEqual([
      ['disk1', '0'],
      ['/dev/sda', '0'],
      ['/dev/sda1', '1'],
      ['/dev/vg-home', '2'],
    ]);
    const sda1 = visible[2] as HTMLElement;
    expect(within(sda1).getByTestId('device-label').textContent).toMatch(/“data”/);
    expect(sda1.textContent).toMatch(/part · ext4/);
  });

  it('collapses each unusable disk into one line with its reason, and the empty loop devices into one counted line; a click expands it', async () => {
    renderApp({ listDevices: () => ok(tree()) });
    await screen.findAllByTestId('device-row');
    const groups = screen.getAllByTestId('device-group-toggle');
    expect(groups.map((g) => g.textContent)).toEqual(['▸ vda: held by vda1; mounted at /', '▸ 3 loop devices that cannot be used: empty (0 B)']);
    const loopRows = () => screen.getAllByTestId('device-row').filter((r) => /loop/.test(r.getAttribute('data-device-id') ?? ''));
    expect(loopRows().every((r) => r.hidden)).toBe(true);
    const loops = groups[1] as HTMLElement;
    expect(loops.getAttribute('aria-expanded')).toBe('false');
    fireEvent.click(loops);
    expect(loops.getAttribute('aria-expanded')).toBe('true');
    expect(loopRows().map((r) => r.hidden)).toEqual([false, false, false]);
    // the reasons are not repeated on the visible rows of the other groups
    expect(screen.getAllByTestId('device-note').filter((n) => !n.closest('tr')?.hidden && /Empty device/.test(n.textContent ?? ''))).toHaveLength(3);
  });

  it('warns on an engine device whose bytes a mounted filesystem writes without the engine, and again when a snapshot is planned', async () => {
    const warned = device('disk1', { bypass: ['the image is attached to /dev/loop3 and /dev/loop3p1 is mounted at /mnt/lab: writes there bypass the engine'] });
    const { store } = renderApp({ listDevices: () => ok([warned, device('disk2')]) });
    await screen.findAllByTestId('device-row');
    expect(screen.getAllByTestId('device-bypass').map((n) => n.textContent)).toEqual([
      'Writes that bypass the engine: the image is attached to /dev/loop3 and /dev/loop3p1 is mounted at /mnt/lab: writes there bypass the engine. A snapshot would miss them.',
    ]);
    store.getState().toggleDevice('disk2');
    fireEvent.click(screen.getByRole('button', { name: 'Snapshots' }));
    expect(screen.queryByTestId('create-bypass-warning')).toBeNull();
    store.getState().toggleDevice('disk1');
    expect((await screen.findByTestId('create-bypass-warning')).textContent).toMatch(/disk1: the image is attached to \/dev\/loop3 .* unmount that filesystem, or mount the device through its NBD export instead/);
  });
});

describe('first-run guide on the Devices screen', () => {
  it('hides once a device is in a snapshot, even before the snapshot list is reloaded', async () => {
    renderApp({ listDevices: () => ok([device('disk1', { snapshotId: 's1', tracked: true })]) });
    await screen.findAllByTestId('device-row');
    expect(screen.queryByTestId('getting-started')).toBeNull();
  });

  it('offers the next step\'s screen, and ticks the steps done', async () => {
    const { store } = renderApp({ listDevices: () => ok([device('disk1')]) });
    await screen.findByTestId('getting-started');
    store.getState().toggleDevice('disk1');
    await waitFor(() => expect(screen.getByTestId('step-devices').getAttribute('data-done')).toBe('true'));
    fireEvent.click(screen.getByRole('button', { name: 'Choose storage' }));
    expect(store.getState().screen).toBe('storage');
  });
});

describe('Names and paths from the system with control characters', () => {
  it('shows ESC and newline escaped in device names, paths, mount points, and on the Storage and Snapshots screens', async () => {
    const name = 'sd\x1b[2Jx';
    const hostile = device(`/dev/${name}`, { name, path: `/dev/${name}`, kind: 'block', sizeBytes: GiB, nbdUri: null, model: '', fstype: 'ext4', mountpoints: ['/mnt/a\nb'] });
    const { store } = renderApp({
      listDevices: () => ok([hostile]),
      listFilesystems: () => ok([{ mountpoint: '/mnt/a\nb', source: `/dev/${name}`, fstype: 'ext4', totalBytes: GiB, freeBytes: GiB }]),
      listSnapshots: () => ok([snapshot('s1', [`/dev/${name}`])]),
    });
    const row = (await screen.findAllByTestId('device-row'))[0] as HTMLElement;
    expect(row.textContent).toContain('sd\\x1b[2Jx');
    expect(row.textContent).toContain('/dev/sd\\x1b[2Jx');
    expect(row.textContent).toContain('mounted at /mnt/a\\nb');
    expect(row.textContent).not.toContain('\x1b');
    expect(screen.getByLabelText('Select sd\\x1b[2Jx')).toBeTruthy();

    store.getState().openScreen('storage');
    const fsRow = (await screen.findAllByTestId('filesystem-row'))[0] as HTMLElement;
    expect(fsRow.textContent).toContain('/mnt/a\\nb');
    expect(fsRow.textContent).toContain('/dev/sd\\x1b[2Jx');
    expect(fsRow.textContent).not.toContain('\x1b');
    expect(fsRow.textContent).not.toContain('\n');

    store.getState().openScreen('snapshots');
    const device0 = (await screen.findAllByTestId('snapshot-device'))[0] as HTMLElement;
    expect(within(device0).getByRole('rowheader').textContent).toBe('/dev/sd\\x1b[2Jx');
  });
});
