import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { placeDevices } from '../../../engine/devices/block-device-entry.js';
import { listWithLsblk, parseLsblkJson } from '../../../engine/devices/discovery.js';
import { loopBackingFile, partitionStartBytes } from '../../../engine/devices/sysfs-block.js';
import { writeBypass } from '../../../engine/devices/write-bypass.js';
import type { WritePathDevice } from '../../../engine/devices/write-bypass.js';
import { dosTable } from '../../helpers/dos-table.js';
import { canUseLoop, hasCommand } from '../../helpers/env.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const MiB = 1024 * 1024;

describe('placeDevices: the lsblk tree with every parent', () => {
  it('captured on this machine (lsblk 2.38.1): a loop device with two partitions, one mounted', () => {
    const placed = placeDevices(parseLsblkJson(fixture('lsblk-2.38-loop-partitions.json')));
    expect(placed.map((p) => [p.entry.path, p.entry.type, p.parents])).toEqual([
      ['/dev/loop0', 'loop', []],
      ['/dev/loop0p1', 'part', ['/dev/loop0']],
      ['/dev/loop0p2', 'part', ['/dev/loop0']],
      ['/dev/loop1', 'loop', []],
      ['/dev/zram0', 'disk', []],
      ['/dev/vda', 'disk', []],
    ]);
    expect(placed[2]?.entry.mountpoints).toEqual(['/tmp/rp/mnt']);
    expect(placed[1]?.entry.mountpoints).toEqual([]);
  });

  it('md RAID over two disks and LVM on it: listed once, with both partitions as parents', () => {
    const placed = placeDevices(parseLsblkJson(fixture('lsblk-handmade-raid-lvm.json')));
    expect(placed.map((p) => p.entry.name)).toEqual(['sdb', 'sdb1', 'md0', 'vg0-home', 'sdc', 'sdc1']);
    const md = placed.find((p) => p.entry.name === 'md0');
    expect(md?.parents).toEqual(['/dev/sdb1', '/dev/sdc1']);
    expect(md?.entry.type).toBe('raid1');
    const lv = placed.find((p) => p.entry.name === 'vg0-home');
    expect(lv?.parents).toEqual(['/dev/md0']);
    expect(lv?.entry).toMatchObject({ label: 'home', fstype: 'ext4', mountpoints: ['/home'] });
    expect(placed.find((p) => p.entry.name === 'sdb1')?.entry.label).toBe('nas:0');
  });

  it('an lsblk without LABEL (util-linux 2.34 strings) gives label null', () => {
    const [sda] = parseLsblkJson(fixture('lsblk-2.34-strings.json'));
    expect(sda?.label).toBeNull();
  });
});

const dev = (path: string, parents: string[], mountpoints: string[] = [], backingFile: string | null = null): WritePathDevice => ({ path, parents, mountpoints, backingFile });

describe('writeBypass', () => {
  const tree: WritePathDevice[] = [
    dev('/dev/loop3', [], [], '/srv/lab/disk1.img'),
    dev('/dev/loop3p1', ['/dev/loop3']),
    dev('/dev/loop3p2', ['/dev/loop3'], ['/mnt/lab']),
    dev('/dev/loop4', [], [], '/srv/lab/disk2.img'),
    dev('/dev/sdb', []),
    dev('/dev/sdb1', ['/dev/sdb']),
    dev('/dev/mapper/vg-data', ['/dev/sdb1'], ['/data']),
    dev('/dev/sdc', []),
  ];

  it('an image attached to a loop device whose partition is mounted', () => {
    expect(writeBypass('/srv/lab/disk1.img', tree)).toEqual([
      'the image is attached to /dev/loop3 and /dev/loop3p2 is mounted at /mnt/lab: writes there bypass the engine',
    ]);
  });

  it('an image on a loop device that nothing mounts: no warning', () => {
    expect(writeBypass('/srv/lab/disk2.img', tree)).toEqual([]);
  });

  it('a fronted disk with a logical volume mounted two levels down', () => {
    expect(writeBypass('/dev/sdb', tree)).toEqual(['/dev/mapper/vg-data is mounted at /data: writes there go to the disk directly, not through the engine']);
  });

  it('a fronted disk nothing mounts, and an image on no loop device: no warning', () => {
    expect(writeBypass('/dev/sdc', tree)).toEqual([]);
    expect(writeBypass('/srv/lab/other.img', tree)).toEqual([]);
  });
});

describe('the tree of real loop devices', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'devtree-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.skipIf(!canUseLoop || !hasCommand('partx') || !hasCommand('mkfs.ext4'))(
    '[root] lsblk, sysfs and the bypass check on a partitioned loop device with a mounted ext4 (partx, mkfs.ext4)',
    async () => {
      // DOS table: partition 1 at 1 MiB (4 MiB), partition 2 at 8 MiB (16 MiB)
      const image = join(dir, 'lab.img');
      const bytes = Buffer.alloc(32 * MiB);
      dosTable([
        { firstLba: 2048, sectors: 8192 },
        { firstLba: 16384, sectors: 32768 },
      ]).copy(bytes, 0);
      writeFileSync(image, bytes);
      const loop = execFileSync('losetup', ['--find', '--show', '--partscan', image], { encoding: 'utf8' }).trim();
      const name = loop.replace('/dev/', '');
      const mnt = join(dir, 'mnt');
      mkdirSync(mnt);
      let mounted = false;
      try {
        if (!existsSync(`/sys/class/block/${name}p1`)) execFileSync('partx', ['--add', loop]);
        execFileSync('mkfs.ext4', ['-q', `${loop}p2`]);
        execFileSync('mount', [`${loop}p2`, mnt]);
        mounted = true;
        const placed = placeDevices(await listWithLsblk());
        const mine = placed.filter((p) => p.entry.path === loop || p.parents.includes(loop));
        expect(mine.map((p) => [p.entry.path, p.entry.type, p.parents])).toEqual([
          [loop, 'loop', []],
          [`${loop}p1`, 'part', [loop]],
          [`${loop}p2`, 'part', [loop]],
        ]);
        expect(mine[2]?.entry.mountpoints).toEqual([mnt]);
        expect(partitionStartBytes(`${name}p1`)).toBe(1 * MiB);
        expect(partitionStartBytes(`${name}p2`)).toBe(8 * MiB);
        expect(loopBackingFile(name)).toBe(image);
        const paths = placed.map((p) => ({ path: p.entry.path, parents: p.parents, mountpoints: p.entry.mountpoints, backingFile: p.entry.type === 'loop' ? loopBackingFile(p.entry.name) : null }));
        expect(writeBypass(image, paths)).toEqual([`the image is attached to ${loop} and ${loop}p2 is mounted at ${mnt}: writes there bypass the engine`]);
      } finally {
        if (mounted) execFileSync('umount', [mnt]);
        execFileSync('losetup', ['--detach', loop]);
      }
    },
  );
});
