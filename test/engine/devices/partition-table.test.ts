import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guidText, readPartitionTable, readPartitionTableOfFile } from '../../../engine/devices/partition-table.js';
import type { ReadAt } from '../../../engine/devices/partition-table.js';
import { putMbrEntry, signed } from '../../helpers/dos-table.js';
import { canUseLoop, hasCommand } from '../../helpers/env.js';

const MiB = 1024 * 1024;

const readerOf =
  (image: Uint8Array): ReadAt =>
  async (offset, length) =>
    image.subarray(offset, Math.min(image.length, offset + length));

/** An MBR entry written by hand: type, first LBA, sector count (little endian at +8, +12). */
/**
 * A 64 MiB image with a DOS table: primary 1 (Linux, 1 MiB + 8 MiB), primary 2
 * extended (at 16 MiB, 32 MiB long) holding logical 5 (4 MiB at 17 MiB) and
 * logical 6 (8 MiB at 24 MiB).
 */
function handMadeMbrImage(): Buffer {
  const image = Buffer.alloc(64 * MiB);
  const mbr = signed(Buffer.alloc(512));
  putMbrEntry(mbr, 0, 0x83, 2048, 16384);
  putMbrEntry(mbr, 1, 0x05, 32768, 65536);
  mbr.copy(image, 0);
  // first EBR at the start of the extended partition: logical at +2048, next EBR at +14336 (relative to the extended start)
  const ebr1 = signed(Buffer.alloc(512));
  putMbrEntry(ebr1, 0, 0x83, 2048, 8192);
  putMbrEntry(ebr1, 1, 0x05, 14336, 18432);
  ebr1.copy(image, 32768 * 512);
  const ebr2 = signed(Buffer.alloc(512));
  putMbrEntry(ebr2, 0, 0x82, 2048, 16384);
  ebr2.copy(image, (32768 + 14336) * 512);
  return image;
}

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptable-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** partx (util-linux, libblkid) as the independent reader: [number, start bytes, size bytes]. */
function partxLayout(path: string): [number, number, number][] {
  const out = execFileSync('partx', ['--noheadings', '--raw', '--output', 'NR,START,SECTORS', path], { encoding: 'utf8' });
  return out
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number) as [number, number, number])
    .map(([nr, start, sectors]) => [nr, start * 512, sectors * 512]);
}

describe('readPartitionTable: MBR', () => {
  it('reads the primary entries and follows the extended partition to its logical partitions', async () => {
    const table = await readPartitionTable(readerOf(handMadeMbrImage()));
    expect(table?.scheme).toBe('mbr');
    expect(table?.partitions.map((p) => [p.number, p.startBytes, p.sizeBytes, p.type])).toEqual([
      [1, 1 * MiB, 8 * MiB, '0x83'],
      [2, 16 * MiB, 32 * MiB, '0x05'],
      [5, 17 * MiB, 4 * MiB, '0x83'],
      [6, 24 * MiB, 8 * MiB, '0x82'],
    ]);
  });

  it.skipIf(!hasCommand('partx'))('agrees with partx on the same image file (partx)', async () => {
    const path = join(dir, 'mbr.img');
    writeFileSync(path, handMadeMbrImage());
    const table = await readPartitionTableOfFile(path);
    // partx lists the extended container with its 1 KiB "size" as the kernel does: compare the others
    const ours = table?.partitions.filter((p) => p.type !== '0x05').map((p) => [p.number, p.startBytes, p.sizeBytes]);
    expect(ours).toEqual(partxLayout(path).filter(([nr]) => nr !== 2));
  });

  it('no 0x55AA signature: no table', async () => {
    const image = Buffer.alloc(4096);
    putMbrEntry(image, 0, 0x83, 2048, 100);
    expect(await readPartitionTable(readerOf(image))).toBeNull();
  });

  it('a filesystem boot sector ending in 0x55AA (entries that start at LBA 0) is not a table', async () => {
    const image = signed(Buffer.alloc(4096));
    putMbrEntry(image, 0, 0x07, 0, 100);
    expect(await readPartitionTable(readerOf(image))).toBeNull();
  });

  it('an EBR chain that loops back on itself stops instead of spinning', async () => {
    const image = Buffer.alloc(8 * MiB);
    const mbr = signed(Buffer.alloc(512));
    putMbrEntry(mbr, 0, 0x05, 2048, 8192);
    mbr.copy(image, 0);
    const ebr = signed(Buffer.alloc(512));
    putMbrEntry(ebr, 0, 0x83, 64, 128);
    putMbrEntry(ebr, 1, 0x05, 1, 128);
    ebr.copy(image, 2048 * 512);
    const ebr2 = signed(Buffer.alloc(512));
    putMbrEntry(ebr2, 0, 0x83, 64, 64);
    putMbrEntry(ebr2, 1, 0x05, 0, 0);
    // ebr2 points back to the first EBR's offset 0: the chain ends there
    ebr2[446 + 16 + 4] = 0x05;
    ebr2.writeUInt32LE(0, 446 + 16 + 8);
    ebr2.copy(image, 2049 * 512);
    const table = await readPartitionTable(readerOf(image));
    expect(table?.partitions.map((p) => p.number)).toEqual([1, 5, 6]);
  });
});

describe('readPartitionTable: GPT', () => {
  it('GUID text form: first three fields little endian', () => {
    // the EFI system partition type as stored on disk
    const bytes = Buffer.from('28732ac11ff8d211ba4b00a0c93ec93b', 'hex');
    expect(guidText(bytes)).toBe('c12a7328-f81f-11d2-ba4b-00a0c93ec93b');
  });

  it('a protective MBR without a GPT header is refused', async () => {
    const image = signed(Buffer.alloc(64 * 1024));
    putMbrEntry(image, 0, 0xee, 1, 127);
    await expect(readPartitionTable(readerOf(image))).rejects.toThrow(/no "EFI PART" header/);
  });

  it('an entry size below 128 bytes is refused', async () => {
    const image = signed(Buffer.alloc(64 * 1024));
    putMbrEntry(image, 0, 0xee, 1, 127);
    image.write('EFI PART', 512, 'latin1');
    image.writeBigUInt64LE(2n, 512 + 72);
    image.writeUInt32LE(128, 512 + 80);
    image.writeUInt32LE(64, 512 + 84);
    await expect(readPartitionTable(readerOf(image))).rejects.toThrow(/not a valid table/);
  });

  it.skipIf(!hasCommand('systemd-repart'))('reads a table written by systemd-repart: an 8 MiB ESP "boot" and a 16 MiB "data" (systemd-repart)', async () => {
    const defs = join(dir, 'defs');
    mkdirSync(defs, { recursive: true });
    writeFileSync(join(defs, '10-esp.conf'), '[Partition]\nType=esp\nLabel=boot\nSizeMinBytes=8M\nSizeMaxBytes=8M\n');
    writeFileSync(join(defs, '20-data.conf'), '[Partition]\nType=linux-generic\nLabel=data\nSizeMinBytes=16M\nSizeMaxBytes=16M\n');
    const path = join(dir, 'gpt.img');
    execFileSync('systemd-repart', ['--empty=create', '--size=64M', `--definitions=${defs}`, '--dry-run=no', '--no-pager', path], { stdio: 'ignore' });
    const table = await readPartitionTableOfFile(path);
    expect(table?.scheme).toBe('gpt');
    expect(table?.partitions.map((p) => [p.name, p.sizeBytes, p.type])).toEqual([
      ['boot', 8 * MiB, 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b'],
      ['data', 16 * MiB, '0fc63daf-8483-4772-8e79-3d69d8477de4'],
    ]);
    if (hasCommand('partx')) expect(table?.partitions.map((p) => [p.number, p.startBytes, p.sizeBytes])).toEqual(partxLayout(path));
  });

  it.skipIf(!hasCommand('sfdisk'))('reads a GPT written by sfdisk with a known layout (sfdisk)', async () => {
    const path = join(dir, 'sfdisk.img');
    const fd = openSync(path, 'w');
    writeSync(fd, Buffer.alloc(1), 0, 1, 32 * MiB - 1);
    closeSync(fd);
    execFileSync('sfdisk', ['--quiet', path], { input: 'label: gpt\nstart=2048, size=4096, name=one\nstart=8192, size=8192, name=two\n' });
    const table = await readPartitionTableOfFile(path);
    expect(table?.partitions.map((p) => [p.number, p.startBytes, p.sizeBytes, p.name])).toEqual([
      [1, 1 * MiB, 2 * MiB, 'one'],
      [2, 4 * MiB, 4 * MiB, 'two'],
    ]);
  });

  it('a file that cannot be opened has no table', async () => {
    expect(await readPartitionTableOfFile(join(dir, 'missing.img'))).toBeNull();
  });
});

describe('readPartitionTable against the kernel', () => {
  it.skipIf(!canUseLoop || !hasCommand('partx'))('[root] the kernel partitions of a loop device (losetup -P, partx --add) start and end where the table says', async () => {
    const path = join(dir, 'kernel.img');
    writeFileSync(path, handMadeMbrImage());
    const loop = execFileSync('losetup', ['--find', '--show', '--partscan', path], { encoding: 'utf8' }).trim();
    try {
      const name = loop.replace('/dev/', '');
      // kernels built without the DOS/EFI partition parsers leave partscan empty: partx adds them (BLKPG)
      if (!existsSync(`/sys/class/block/${name}p1`)) execFileSync('partx', ['--add', loop]);
      const table = await readPartitionTableOfFile(loop);
      for (const p of table?.partitions ?? []) {
        if (p.type === '0x05') continue;
        const sys = `/sys/class/block/${name}p${p.number}`;
        expect(Number(readFileSync(`${sys}/start`, 'utf8')) * 512).toBe(p.startBytes);
        expect(Number(readFileSync(`${sys}/size`, 'utf8')) * 512).toBe(p.sizeBytes);
      }
      expect(table?.partitions.length).toBe(4);
    } finally {
      execFileSync('losetup', ['--detach', loop]);
    }
  });
});
