import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineWriteBypass, listBlockDevices, tablePartitions } from '../../../engine/helper/devices-wiring.js';
import { dosTable } from '../../helpers/dos-table.js';
import { canUseLoop, hasCommand } from '../../helpers/env.js';

const MiB = 1024 * 1024;

/** A 32 MiB image with a DOS table: partition 1 at 1 MiB (4 MiB), partition 2 at 8 MiB (16 MiB). */
function partitionedImage(path: string): void {
  const bytes = Buffer.alloc(32 * MiB);
  dosTable([
    { firstLba: 2048, sectors: 8192 },
    { firstLba: 16384, sectors: 32768 },
  ]).copy(bytes, 0);
  writeFileSync(path, bytes);
}

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wiring-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('devices.list wiring: partitions, tree and bypass', () => {
  it('an image file: its partitions from the table on it, by start, named "partition N"', async () => {
    const image = join(dir, 'plain.img');
    partitionedImage(image);
    expect(await tablePartitions(image)).toEqual([
      { number: 1, start: 1 * MiB, size: 4 * MiB, name: 'partition 1' },
      { number: 2, start: 8 * MiB, size: 16 * MiB, name: 'partition 2' },
    ]);
    expect(await tablePartitions(join(dir, 'missing.img'))).toEqual([]);
  });

  it.skipIf(!canUseLoop || !hasCommand('partx') || !hasCommand('mkfs.ext4'))(
    '[root] a partitioned loop device: the kernel partitions on the disk record, parents on the partitions, and the bypass of its mounted partition (partx, mkfs.ext4)',
    async () => {
      const image = join(dir, 'loop.img');
      partitionedImage(image);
      const loop = execFileSync('losetup', ['--find', '--show', '--partscan', image], { encoding: 'utf8' }).trim();
      const mnt = join(dir, 'mnt');
      mkdirSync(mnt, { recursive: true });
      let mounted = false;
      try {
        if (!existsSync(`/sys/class/block/${loop.replace('/dev/', '')}p1`)) execFileSync('partx', ['--add', loop]);
        execFileSync('mkfs.ext4', ['-q', `${loop}p1`]);
        execFileSync('mount', [`${loop}p1`, mnt]);
        mounted = true;
        const records = await listBlockDevices();
        const disk = records.find((r) => r.path === loop);
        expect(disk).toMatchObject({ type: 'loop', parents: [], backingFile: image });
        expect(disk?.partitions).toEqual([
          { number: 1, start: 1 * MiB, size: 4 * MiB, name: `${loop.replace('/dev/', '')}p1` },
          { number: 2, start: 8 * MiB, size: 16 * MiB, name: `${loop.replace('/dev/', '')}p2` },
        ]);
        expect(records.find((r) => r.path === `${loop}p1`)).toMatchObject({ type: 'part', parents: [loop], mountpoints: [mnt] });
        expect(engineWriteBypass(image, records)).toEqual([`the image is attached to ${loop} and ${loop}p1 is mounted at ${mnt}: writes there bypass the engine`]);
        // the engine may know the image by another path to the same file (a symbolic link)
        const link = join(dir, 'link.img');
        symlinkSync(image, link);
        expect(engineWriteBypass(link, records)).toEqual([`the image is attached to ${loop} and ${loop}p1 is mounted at ${mnt}: writes there bypass the engine`]);
        // the kernel and the table on the image agree
        expect((await tablePartitions(image)).map((p) => [p.start, p.size])).toEqual(disk?.partitions?.map((p) => [p.start, p.size]));
      } finally {
        if (mounted) execFileSync('umount', [mnt]);
        execFileSync('losetup', ['--detach', loop]);
      }
      expect(engineWriteBypass(image, await listBlockDevices())).toEqual([]);
    },
  );
});
