import { describe, expect, it } from 'vitest';
import { deviceDetails, selectability, selectableIds, visibleDevices } from '../../../../renderer/src/features/devices/selectable.js';
import { GiB, device } from '../../fixtures.js';

const block = (name: string, sizeBytes = 10 * GiB) =>
  device(`/dev/${name}`, { name, path: `/dev/${name}`, kind: 'block', type: 'disk', sizeBytes, nbdUri: null, model: '' });

describe('device selectability', () => {
  it('lets engine devices be ticked on the embedded engine, but not its block devices', () => {
    expect(selectability(device('disk1'), 'embedded')).toEqual({ selectable: true });
    const vda = selectability(block('vda'), 'embedded');
    expect(vda.selectable).toBe(false);
    expect(vda.selectable === false && vda.reason).toBe('needs-engine');
  });

  it('lets block devices be ticked on the kernel driver', () => {
    expect(selectability(block('sdb'), 'kernel')).toEqual({ selectable: true });
  });

  it('never lets a 0-byte device be ticked, whatever the driver', () => {
    for (const driver of ['kernel', 'embedded', null] as const) {
      const r = selectability(block('zram0', 0), driver);
      expect(r.selectable === false && r.reason).toBe('empty');
    }
    expect(selectability(device('empty', { sizeBytes: 0 }), 'embedded').selectable).toBe(false);
  });

  it('lists the selectable ids in table order', () => {
    const list = [block('zram0', 0), device('disk1'), block('vda'), device('disk2')];
    expect(selectableIds(list, 'embedded')).toEqual(['disk1', 'disk2']);
    expect(selectableIds(list, 'kernel')).toEqual(['disk1', '/dev/vda', 'disk2']);
  });

  it('leaves out a block device the engine already fronts', () => {
    const fronted = device('loop0', { path: '/dev/loop0' });
    const list = [fronted, block('loop0'), block('vda')];
    expect(visibleDevices(list).map((d) => d.id)).toEqual(['loop0', '/dev/vda']);
  });

  it('describes model, filesystem and mount points in one line', () => {
    expect(deviceDetails(block('vda'))).toBe('');
    expect(deviceDetails({ ...block('sda'), model: 'QEMU disk', fstype: 'ext4', mountpoints: ['/', '/boot'] })).toBe(
      'QEMU disk · ext4 · mounted at /, /boot',
    );
    // a device that is not a whole disk says what it is
    expect(deviceDetails({ ...block('vg0-home'), type: 'lvm', fstype: 'xfs' })).toBe('lvm · xfs');
  });
});
