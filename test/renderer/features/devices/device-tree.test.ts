import { describe, expect, it } from 'vitest';
import type { DeviceEntry } from '../../../../app/shared/types.js';
import { deviceGroups } from '../../../../renderer/src/features/devices/device-tree.js';
import { GiB, device } from '../../fixtures.js';

const blockDev = (name: string, overrides: Partial<DeviceEntry> = {}): DeviceEntry =>
  device(`/dev/${name}`, { name, path: `/dev/${name}`, kind: 'block', type: 'disk', sizeBytes: GiB, nbdUri: null, model: '', ...overrides });
const part = (name: string, parent: string, overrides: Partial<DeviceEntry> = {}): DeviceEntry => blockDev(name, { type: 'part', parents: [`/dev/${parent}`], ...overrides });

/** Each group as text: "rows: name@depth ..." or "collapsed <summary>: name@depth ...". */
function shape(devices: DeviceEntry[]): string[] {
  return deviceGroups(devices, 'embedded').map((g) => {
    const rows = g.rows.map((r) => `${r.device.name}@${r.depth}`).join(' ');
    return g.kind === 'rows' ? `rows: ${rows}` : `collapsed ${g.summary}: ${rows}`;
  });
}

describe('deviceGroups (the Devices tree)', () => {
  it('engine devices first, then each disk with its partitions and what sits on them', () => {
    const devices = [
      blockDev('sdb'),
      part('sdb1', 'sdb'),
      blockDev('md0', { type: 'raid1', parents: ['/dev/sdb1', '/dev/sdc1'] }),
      blockDev('vg0-home', { type: 'lvm', parents: ['/dev/md0'] }),
      blockDev('sdc'),
      part('sdc1', 'sdc'),
      device('disk1'),
    ];
    expect(shape(devices)).toEqual(['rows: disk1@0', 'rows: sdb@0 sdb1@1 md0@2 vg0-home@3', 'rows: sdc@0 sdc1@1']);
    // md0 is drawn once, under sdb1, and says it is on sdc1 too
    const md = deviceGroups(devices, 'embedded')[1]?.rows.find((r) => r.device.name === 'md0');
    expect(md?.alsoOn).toEqual(['/dev/sdc1']);
  });

  it('a disk of which nothing can be used is one collapsed line with its reasons', () => {
    const devices = [
      blockDev('sda', { blockedBy: ['held by sda1, sda2'] }),
      part('sda1', 'sda', { blockedBy: ['mounted at /'] }),
      part('sda2', 'sda', { blockedBy: ['mounted at /'] }),
      blockDev('sdb'),
    ];
    expect(shape(devices)).toEqual(['collapsed sda: held by sda1, sda2; mounted at /: sda@0 sda1@1 sda2@1', 'rows: sdb@0']);
  });

  it('several unusable devices of one type share one line that counts them', () => {
    const loops = Array.from({ length: 7 }, (_, i) => blockDev(`loop${i}`, { type: 'loop', sizeBytes: 0 }));
    expect(shape([...loops, blockDev('vdb')])).toEqual([
      'collapsed 7 loop devices that cannot be used: empty (0 B): loop0@0 loop1@0 loop2@0 loop3@0 loop4@0 loop5@0 loop6@0',
      'rows: vdb@0',
    ]);
  });

  it('two or three unusable disks with different reasons: each named with its own', () => {
    expect(shape([blockDev('zram0', { sizeBytes: 0 }), blockDev('vda', { blockedBy: ['mounted at /'] })])).toEqual([
      'collapsed 2 disks that cannot be used: zram0 empty (0 B); vda mounted at /: zram0@0 vda@0',
    ]);
  });

  it('many different reasons are shortened to two and a count', () => {
    const loops = ['/snap/a', '/snap/b', '/snap/c', '/snap/d'].map((m, i) => blockDev(`loop${i}`, { type: 'loop', blockedBy: [`mounted at ${m}`] }));
    expect(shape(loops)).toEqual(['collapsed 4 loop devices that cannot be used: mounted at /snap/a; mounted at /snap/b and 2 more: loop0@0 loop1@0 loop2@0 loop3@0']);
  });

  it('a disk with one usable partition stays a tree, the unusable partition with it', () => {
    const devices = [blockDev('vda', { blockedBy: ['held by vda1'] }), part('vda1', 'vda', { blockedBy: ['mounted at /'] }), part('vda2', 'vda')];
    expect(shape(devices)).toEqual(['rows: vda@0 vda1@1 vda2@1']);
  });

  it('a partition whose disk is not listed (an engine device fronts it) becomes a root', () => {
    const devices = [device('vda', { path: '/dev/vda' }), part('vda1', 'vda')];
    expect(shape(devices)).toEqual(['rows: vda@0', 'rows: vda1@0']);
  });

  it('the kernel driver can snapshot any non-empty block device: nothing collapses but empty ones', () => {
    const devices = [blockDev('sda', { blockedBy: ['mounted at /'] }), blockDev('zram0', { sizeBytes: 0 })];
    const groups = deviceGroups(devices, 'kernel');
    expect(groups.map((g) => g.kind)).toEqual(['rows', 'collapsed']);
  });
});
