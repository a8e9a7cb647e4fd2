import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listFilesystems, parseMountInfo, unescapeMountField, usefulMounts } from '../../../app/bridge/filesystems.js';

const SAMPLE = [
  '22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw,errors=remount-ro',
  '23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw',
  '24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw',
  '25 22 0:5 / /dev rw,nosuid shared:8 - devtmpfs udev rw,size=8000k',
  '26 22 0:25 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=1600k',
  '27 22 8:3 / /mnt/My\\040Backups rw,relatime shared:30 - xfs /dev/sdb1 rw',
  '28 22 7:0 / /snap/core/1 ro,nodev,relatime shared:31 - squashfs /dev/loop0 ro',
  '29 22 8:4 / /data ro,relatime shared:32 - ext4 /dev/sdc1 ro',
  '30 22 0:40 / /tmp rw,nosuid shared:33 master:7 - tmpfs tmpfs rw',
  '31 26 0:41 / /run/media/me/USB rw,relatime shared:34 - vfat /dev/sdd1 rw',
  'garbage line',
].join('\n');

describe('mountinfo', () => {
  it('parses fields, optional fields and octal escapes', () => {
    const mounts = parseMountInfo(SAMPLE);
    expect(mounts).toHaveLength(10);
    expect(mounts[0]).toEqual({ mountpoint: '/', source: '/dev/sda2', fstype: 'ext4', readOnly: false });
    expect(mounts[5]?.mountpoint).toBe('/mnt/My Backups');
    expect(mounts[8]).toMatchObject({ mountpoint: '/tmp', fstype: 'tmpfs' });
    expect(unescapeMountField('a\\011b\\134c')).toBe('a\tb\\c');
  });

  it('keeps writable real filesystems, drops pseudo, read-only and system mounts', () => {
    expect(usefulMounts(parseMountInfo(SAMPLE)).map((m) => m.mountpoint)).toEqual(['/', '/mnt/My Backups', '/tmp', '/run/media/me/USB']);
  });

  it('adds statfs sizes and skips unreachable mountpoints', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'blksnap-mountinfo-'));
    try {
      const file = join(dir, 'mountinfo');
      writeFileSync(file, `${SAMPLE}\n40 22 8:9 / ${dir} rw - ext4 /dev/sdz1 rw\n41 22 8:10 / /nonexistent/mount rw - ext4 /dev/sdy1 rw\n`);
      const list = await listFilesystems(file);
      const mine = list.find((f) => f.mountpoint === dir);
      expect(mine).toMatchObject({ source: '/dev/sdz1', fstype: 'ext4' });
      expect(mine?.totalBytes).toBeGreaterThan(0);
      expect(mine?.freeBytes).toBeGreaterThanOrEqual(0);
      expect(list.some((f) => f.mountpoint === '/nonexistent/mount')).toBe(false);
      expect(list.find((f) => f.mountpoint === '/tmp')?.source).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
