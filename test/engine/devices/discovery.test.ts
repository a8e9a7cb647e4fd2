import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  discoverBlockDevices,
  flattenDevices,
  parseLsblkJson,
  parseMountinfo,
  readSysfsBlockDevices,
} from '../../../engine/devices/discovery.js';
import { canUseLoop, hasCommand } from '../../helpers/env.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

describe('parseLsblkJson (captured lsblk output)', () => {
  it('util-linux 2.38: tree, sizes, sector sizes, models, read-only, mount points without nulls', () => {
    const devices = parseLsblkJson(fixture('lsblk-2.38-laptop.json'));
    expect(devices.map((d) => d.name)).toEqual(['sda', 'sr0', 'nvme0n1']);
    const [sda, sr0, nvme] = devices;
    expect(sda).toMatchObject({
      path: '/dev/sda',
      majMin: '8:0',
      size: 1000204886016,
      logicalBlockSize: 512,
      physicalBlockSize: 4096,
      model: 'WDC WD10EZEX-08WN4A0',
      type: 'disk',
      fstype: null,
      mountpoints: [],
      readOnly: false,
    });
    expect(sda?.children?.[0]).toMatchObject({ name: 'sda1', type: 'part', fstype: 'ext4', mountpoints: ['/srv/data', '/mnt/data bind'] });
    expect(sr0).toMatchObject({ type: 'rom', readOnly: true, logicalBlockSize: 2048 });
    expect(sr0?.children).toBeUndefined();
    const crypt = nvme?.children?.[1]?.children?.[0];
    expect(crypt).toMatchObject({ name: 'nvme0n1p2_crypt', path: '/dev/mapper/nvme0n1p2_crypt', type: 'crypt', mountpoints: ['/'] });
    expect(flattenDevices(devices).map((d) => d.name)).toEqual([
      'sda',
      'sda1',
      'sr0',
      'nvme0n1',
      'nvme0n1p1',
      'nvme0n1p2',
      'nvme0n1p2_crypt',
    ]);
  });

  it('older util-linux: every value a string, singular "mountpoint", padded model', () => {
    const [sda, loop0] = parseLsblkJson(fixture('lsblk-2.34-strings.json'));
    expect(sda).toMatchObject({ size: 21474836480, logicalBlockSize: 512, model: 'QEMU HARDDISK', serial: 'QM00001', mountpoints: [], readOnly: false });
    expect(sda?.children?.[0]).toMatchObject({ name: 'sda1', mountpoints: ['/'], size: 21473787904 });
    expect(loop0).toMatchObject({ type: 'loop', readOnly: true, fstype: 'squashfs', mountpoints: ['/snap/core18/1885'] });
  });

  it('this VM (captured 2.38 output)', () => {
    const devices = parseLsblkJson(fixture('lsblk-2.38-vm.json'));
    expect(devices.length).toBeGreaterThan(0);
    for (const d of devices) {
      expect(d.path).toBe(`/dev/${d.name}`);
      expect(d.majMin).toMatch(/^\d+:\d+$/);
      expect(Number.isInteger(d.size)).toBe(true);
    }
  });

  it('rejects what is not lsblk JSON with EINVAL', () => {
    expect(() => parseLsblkJson('not json')).toThrow(/EINVAL/);
    expect(() => parseLsblkJson('{"devices": []}')).toThrow(/EINVAL/);
    expect(() => parseLsblkJson({ blockdevices: [{ name: 'x', size: 'big' }] })).toThrow(/EINVAL: lsblk: x size/);
    expect(() => parseLsblkJson({ blockdevices: [{ size: 1 }] })).toThrow(/no name/);
    expect(parseLsblkJson({ blockdevices: [{ name: 'x' }] })[0]).toMatchObject({
      path: '/dev/x',
      size: 0,
      logicalBlockSize: 512,
      physicalBlockSize: 512,
      mountpoints: [],
    });
  });
});

describe('flattenDevices', () => {
  it('lists a device with several parents once (md/LVM over several disks)', () => {
    const [disks] = [
      parseLsblkJson({
        blockdevices: [
          { name: 'sda', path: '/dev/sda', size: 1024, children: [{ name: 'sda1', path: '/dev/sda1', size: 512, children: [{ name: 'md0', path: '/dev/md0', size: 512, type: 'raid1' }] }] },
          { name: 'sdb', path: '/dev/sdb', size: 1024, children: [{ name: 'sdb1', path: '/dev/sdb1', size: 512, children: [{ name: 'md0', path: '/dev/md0', size: 512, type: 'raid1' }] }] },
        ],
      }),
    ];
    expect(flattenDevices(disks).map((d) => d.path)).toEqual(['/dev/sda', '/dev/sda1', '/dev/md0', '/dev/sdb', '/dev/sdb1']);
  });
});

describe('sysfs fallback', () => {
  let root = '';
  const put = (rel: string, text: string): void => {
    const p = join(root, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, `${text}\n`);
  };

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'sysfs-'));
    put('block/sdb/size', '2097152');
    put('block/sdb/dev', '8:16');
    put('block/sdb/ro', '0');
    put('block/sdb/queue/logical_block_size', '512');
    put('block/sdb/queue/physical_block_size', '4096');
    put('block/sdb/device/model', 'Flash Disk      ');
    put('block/sdb/sdb1/partition', '1');
    put('block/sdb/sdb1/size', '2095104');
    put('block/sdb/sdb1/dev', '8:17');
    put('block/sdb/sdb1/ro', '0');
    put('block/loop3/size', '0');
    put('block/loop3/dev', '7:3');
    put('block/loop4/size', '131072');
    put('block/loop4/dev', '7:4');
    put('block/loop4/ro', '1');
    put('block/loop4/queue/logical_block_size', '512');
    put('block/loop4/queue/physical_block_size', '512');
  });

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('reads sizes, block sizes, model, ro, partitions and mount points', () => {
    const mountinfo = [
      '29 1 8:17 / /media/usb\\040stick rw,relatime shared:1 - vfat /dev/sdb1 rw',
      '30 1 7:4 / /snap/x ro shared:2 - squashfs /dev/loop4 ro',
    ].join('\n');
    const devices = readSysfsBlockDevices({ sysRoot: root, mountinfo });
    expect(devices.map((d) => d.name)).toEqual(['loop4', 'sdb']); // unbacked loop3 left out
    const [loop4, sdb] = devices;
    expect(loop4).toMatchObject({ type: 'loop', size: 64 * 1024 * 1024, readOnly: true, mountpoints: ['/snap/x'], majMin: '7:4' });
    expect(sdb).toMatchObject({
      path: '/dev/sdb',
      size: 1024 * 1024 * 1024,
      logicalBlockSize: 512,
      physicalBlockSize: 4096,
      model: 'Flash Disk',
      type: 'disk',
      readOnly: false,
    });
    expect(sdb?.children).toEqual([
      expect.objectContaining({ name: 'sdb1', type: 'part', size: 2095104 * 512, physicalBlockSize: 4096, mountpoints: ['/media/usb stick'] }),
    ]);
  });

  it('a "!" in a sysfs name is a "/" in the device name and node (cciss!c0d0 -> /dev/cciss/c0d0)', () => {
    const tree = mkdtempSync(join(tmpdir(), 'sysfs-bang-'));
    try {
      const p = (rel: string, text: string): void => {
        mkdirSync(dirname(join(tree, rel)), { recursive: true });
        writeFileSync(join(tree, rel), `${text}\n`);
      };
      p('block/cciss!c0d0/size', '2048');
      p('block/cciss!c0d0/dev', '104:0');
      p('block/cciss!c0d0/cciss!c0d0p1/partition', '1');
      p('block/cciss!c0d0/cciss!c0d0p1/size', '1024');
      p('block/cciss!c0d0/cciss!c0d0p1/dev', '104:1');
      const [disk] = readSysfsBlockDevices({ sysRoot: tree, mountinfo: '' });
      expect(disk).toMatchObject({ name: 'cciss/c0d0', path: '/dev/cciss/c0d0', size: 2048 * 512 });
      expect(disk?.children?.[0]).toMatchObject({ name: 'cciss/c0d0p1', path: '/dev/cciss/c0d0p1', type: 'part' });
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  });

  it('parseMountinfo maps major:minor to mount points', () => {
    const m = parseMountinfo('1 0 254:0 / / rw - ext4 /dev/vda rw\n2 1 254:0 /x /bind rw - ext4 /dev/vda rw\n');
    expect(m.get('254:0')).toEqual(['/', '/bind']);
  });
});

describe('live discovery on this machine', () => {
  it.skipIf(!hasCommand('lsblk'))('[lsblk] lsblk and /sys/block agree on every disk', async () => {
    const result = await discoverBlockDevices();
    expect(result.source).toBe('lsblk');
    const sysfs = new Map(readSysfsBlockDevices().map((d) => [d.name, d]));
    expect(result.devices.length).toBeGreaterThan(0);
    for (const d of result.devices) {
      const s = sysfs.get(d.name);
      expect(s, d.name).toBeDefined();
      expect({ size: d.size, majMin: d.majMin, logical: d.logicalBlockSize, ro: d.readOnly }).toEqual({
        size: s?.size,
        majMin: s?.majMin,
        logical: s?.logicalBlockSize,
        ro: s?.readOnly,
      });
    }
  });

  it('falls back to sysfs when lsblk is missing, saying why', async () => {
    const result = await discoverBlockDevices({ lsblk: '/nonexistent/lsblk' });
    expect(result.source).toBe('sysfs');
    expect(result.lsblkError).toMatch(/lsblk/);
    expect(result.devices.length).toBeGreaterThan(0);
  });
});

describe.skipIf(!canUseLoop || !hasCommand('losetup'))('[root] discovery sees a new loop device', () => {
  let dir = '';
  let loop = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'disc-loop-'));
    const image = join(dir, 'd.img');
    writeFileSync(image, '');
    execFileSync('truncate', ['-s', '48M', image]);
    loop = execFileSync('losetup', ['--find', '--show', '--read-only', image], { encoding: 'utf8' }).trim();
  });
  afterAll(() => {
    if (loop) execFileSync('losetup', ['-d', loop]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('[root] via lsblk and via sysfs', async () => {
    for (const result of [await discoverBlockDevices(), await discoverBlockDevices({ lsblk: '/nonexistent/lsblk' })]) {
      const entry = flattenDevices(result.devices).find((d) => d.path === loop);
      expect(entry, result.source).toMatchObject({ type: 'loop', size: 48 * 1024 * 1024, readOnly: true });
    }
  });
});
