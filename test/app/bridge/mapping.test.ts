/** Helper device entries -> contract device entries: what blocks fronting, and lab disks. */
import { describe, expect, it } from 'vitest';
import { imageToDeviceEntry, toDeviceEntry, toKernelModuleHealth } from '../../../app/bridge/mapping.js';

const base = { capacity: 1 << 20, attached: null, snapshotId: null, nbdUri: null } as const;

describe('device mapping', () => {
  it('carries why a block device cannot be fronted, and which images are lab disks', () => {
    const block = toDeviceEntry({ ...base, ref: '/dev/vda', name: 'vda', path: '/dev/vda', kind: 'block', blockedBy: ['vda1 is mounted at /'] });
    expect([block.kind, block.blockedBy, block.labDisk]).toEqual(['block', ['vda1 is mounted at /'], false]);
    const lab = toDeviceEntry({ ...base, ref: 'disk1', name: 'disk1', path: '/x/disk1.img', kind: 'image', attached: true, labDisk: true });
    expect([lab.kind, lab.blockedBy, lab.labDisk]).toEqual(['engine', [], true]);
  });

  it('a helper without the fields (kernel driver, older helper): nothing blocked, no lab disk', () => {
    const d = toDeviceEntry({ ...base, ref: '/dev/sdb', name: 'sdb', path: '/dev/sdb', kind: 'block' });
    expect([d.blockedBy, d.labDisk]).toEqual([[], false]);
  });

  it('an image just opened is a lab disk only when the helper created it', () => {
    const image = { name: 'a', path: '/x/a.img', capacity: 1 << 20, nbdUri: null };
    expect([imageToDeviceEntry(image, true).labDisk, imageToDeviceEntry(image, false).labDisk]).toEqual([true, false]);
  });
});

describe('kernel module health mapping', () => {
  it("keeps what the UI shows and drops the helper's control device path", () => {
    const health = toKernelModuleHealth({
      loaded: true,
      dialect: 'lk6.15',
      moduleVersion: '2.0.0.0',
      filter: 'block-device',
      bdevfilter: false,
      controlPath: '/dev/blksnap-control',
      summary: 'blksnap 2.0.0.0 (lk6.15 dialect, kernel 6.15.2) is loaded; the block-device filter is in the kernel',
      advice: null,
    });
    expect(health).toEqual({
      loaded: true,
      dialect: 'lk6.15',
      moduleVersion: '2.0.0.0',
      filter: 'block-device',
      bdevfilter: false,
      summary: 'blksnap 2.0.0.0 (lk6.15 dialect, kernel 6.15.2) is loaded; the block-device filter is in the kernel',
      advice: null,
    });
  });
});
