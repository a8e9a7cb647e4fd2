/** What uses a block device, from a sysfs tree written by the test and mountinfo / swaps texts. */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  describeUses,
  parseMountinfoEntries,
  parseSwaps,
  readSystemUsage,
  usesOf,
} from '../../../engine/devices/device-holders.js';
import type { SystemUsage } from '../../../engine/devices/device-holders.js';

let sys: string;

/** A block device directory under devices/, its dev file, and its /sys/dev/block link. */
function blockDir(rel: string, majMin: string, extra: Record<string, string> = {}): string {
  const dir = path.join(sys, 'devices', rel);
  fs.mkdirSync(path.join(dir, 'holders'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'dev'), `${majMin}\n`);
  for (const [file, text] of Object.entries(extra)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  fs.mkdirSync(path.join(sys, 'dev/block'), { recursive: true });
  fs.symlinkSync(dir, path.join(sys, 'dev/block', majMin));
  fs.mkdirSync(path.join(sys, 'class/block'), { recursive: true });
  fs.symlinkSync(dir, path.join(sys, 'class/block', path.basename(dir)));
  return dir;
}

function holder(dir: string, name: string): void {
  fs.mkdirSync(path.join(dir, 'holders', name));
}

const noUse = (): SystemUsage => ({ mounts: new Map(), swaps: new Set() });

beforeEach(() => {
  sys = fs.mkdtempSync(path.join(tmpdir(), 'bm-sys-'));
});
afterEach(() => {
  fs.rmSync(sys, { recursive: true, force: true });
});

describe('proc texts', () => {
  it('reads mount point, type and source of mountinfo lines, decoding \\040 escapes and skipping optional fields', () => {
    const text = [
      '36 25 8:1 / /mnt/my\\040disk rw,relatime shared:1 master:2 - ext4 /dev/sda1 rw',
      '40 25 0:45 /@home /home rw - btrfs /dev/nvme0n1p2 rw,subvol=/@home',
      'garbage',
    ].join('\n');
    expect(parseMountinfoEntries(text)).toEqual([
      { majMin: '8:1', mountPoint: '/mnt/my disk', fsType: 'ext4', source: '/dev/sda1' },
      { majMin: '0:45', mountPoint: '/home', fsType: 'btrfs', source: '/dev/nvme0n1p2' },
    ]);
  });

  it('reads the names of /proc/swaps, after its header', () => {
    const text = 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/zram0  partition\t4G\t0\t100\n/swap\\040file file 1 0 -2\n';
    expect(parseSwaps(text)).toEqual(['/dev/zram0', '/swap file']);
  });

  it('keys mounts by device number and leaves anonymous devices (0:N) out', async () => {
    const usage = await readSystemUsage({ mountinfo: '1 0 7:3 / /mnt/a rw - ext4 none rw\n2 0 0:22 / /proc rw - proc proc rw\n', swaps: '' });
    expect([...usage.mounts.entries()]).toEqual([['7:3', ['/mnt/a']]]);
  });
});

describe('usesOf: what holds a device, its partitions or its whole disk', () => {
  it('names the mount points of the device and of its partitions, and swap on a partition', () => {
    blockDir('pci/block/sdb', '8:16');
    blockDir('pci/block/sdb/sdb1', '8:17', { partition: '1' });
    blockDir('pci/block/sdb/sdb2', '8:18', { partition: '2' });
    const usage: SystemUsage = { mounts: new Map([['8:16', ['/a']], ['8:17', ['/boot', '/mnt/b']]]), swaps: new Set(['8:18']) };
    expect(describeUses(usage, 8, 16, sys)).toEqual(['mounted at /a', 'sdb1 is mounted at /boot', 'sdb1 is mounted at /mnt/b', 'sdb2 is used as swap']);
    expect(usesOf(noUse(), 8, 16, sys)).toEqual([]);
  });

  it('names device-mapper and md holders with their names, on the device and on a partition', () => {
    const disk = blockDir('pci/block/sdc', '8:32');
    const part = blockDir('pci/block/sdc/sdc1', '8:33', { partition: '1' });
    blockDir('virtual/block/dm-0', '253:0', { 'dm/name': 'vg-root\n', 'dm/suspended': '0\n' });
    blockDir('virtual/block/md0', '9:0', { 'md/level': 'raid1\n' });
    holder(disk, 'md0');
    holder(part, 'dm-0');
    expect(describeUses(noUse(), 8, 32, sys)).toEqual(['held by md0 (RAID)', 'sdc1 is held by dm-0 (vg-root)']);
    // a partition: its own holders, and what holds its whole disk (not its sibling partitions)
    expect(describeUses(noUse(), 8, 33, sys)).toEqual(['held by dm-0 (vg-root)', 'sdc is held by md0 (RAID)']);
  });

  it('lets a device-mapper device that nothing holds be fronted, but not a suspended one', () => {
    blockDir('virtual/block/dm-1', '253:1', { 'dm/name': 'vg-data\n', 'dm/suspended': '0\n' });
    blockDir('virtual/block/dm-2', '253:2', { 'dm/name': 'vg-frozen\n', 'dm/suspended': '1\n' });
    expect(describeUses(noUse(), 253, 1, sys)).toEqual([]);
    expect(describeUses(noUse(), 253, 2, sys)).toEqual(['a suspended device-mapper device']);
  });

  it('knows nothing of a device missing from sysfs', () => {
    expect(describeUses(noUse(), 1, 99, sys)).toEqual([]);
  });
});
