import { createHash, randomFillSync } from 'node:crypto';
import { open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { backupPoint } from '../../../engine/backup/backup-point.js';
import type { BackupPointRequest } from '../../../engine/backup/backup-point.js';
import type { BlockDevice } from '../../../engine/core/block-device.js';
import { loadPoints, readVerifyRecord } from '../../../engine/backup/chain.js';
import { RawImage } from '../../../engine/backup/image-source.js';
import { manifestSchema } from '../../../engine/backup/manifest.js';
import { restorePoint } from '../../../engine/backup/restore.js';
import { verifyChain, verifyPoint } from '../../../engine/backup/verify.js';
import { hasCommand } from '../../helpers/env.js';
import { CbtDisk, readerOf } from './cbt-disk.js';
import type { Take } from './cbt-disk.js';
import { KiB, MiB, qemuCheck, qemuCompare, run, saveRaw, tempDir } from './sparse-data.js';

const noQemu = !hasCommand('qemu-img');
let dir = '';
let cleanup: () => Promise<void> = async () => undefined;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('backup'));
});
afterEach(async () => {
  await cleanup();
});

/** A clock that starts at 2026-12-01 14:02 UTC and moves one hour per call. */
function clock(): () => Date {
  let t = Date.parse('2026-12-01T14:02:00Z');
  return () => {
    const d = new Date(t);
    t += 3600_000;
    return d;
  };
}

function request(disk: CbtDisk, take: Take, kind: BackupPointRequest['kind'], extra: Partial<BackupPointRequest> = {}): BackupPointRequest {
  return { dir: join(dir, 'chain'), source: readerOf(take.image), device: disk.device, cbt: take.cbt, cbtMap: take.cbtMap, kind, ...extra };
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A read-only BlockDevice over `image` that records the ranges read and the extents() calls. */
function countingDevice(image: RawImage): { device: BlockDevice; reads: [number, number][]; extentCalls: [number, number][] } {
  const reads: [number, number][] = [];
  const extentCalls: [number, number][] = [];
  const device: BlockDevice = {
    name: 'counting',
    capacity: image.capacity,
    logicalBlockSize: 512,
    physicalBlockSize: 4096,
    readOnly: true,
    read: (offset, length) => {
      reads.push([offset, offset + length]);
      return image.read(offset, length);
    },
    readTo: (offset, length, target, at) => {
      reads.push([offset, offset + length]);
      return image.readTo(offset, length, target, at);
    },
    extents: (offset, length) => {
      extentCalls.push([offset, offset + length]);
      return image.extents(offset, length);
    },
    write: () => Promise.reject(new Error('read-only')),
    flush: () => Promise.resolve(),
    discard: () => Promise.reject(new Error('read-only')),
    writeZeroes: () => Promise.reject(new Error('read-only')),
  };
  return { device, reads, extentCalls };
}

describe('backup points: full, incremental, differential', () => {
  it.skipIf(noQemu)('[qemu-img] a chain of points: each checks, equals its take, shows its chain, verifies and restores to the take', async () => {
    const disk = new CbtDisk(256 * KiB, 24 * MiB + 512 * 3, 1);
    const now = clock();
    const takes: Take[] = [];
    const kinds = ['full', 'incremental', 'differential', 'incremental'] as const;
    const ids: string[] = [];
    for (const [i, kind] of kinds.entries()) {
      if (i > 0) disk.changeBlocks(0.05, 10 + i);
      if (i === 2) disk.write(3 * MiB, Buffer.alloc(512 * KiB)); // zeroes where there was data
      const take = disk.take();
      takes.push(take);
      const compress = ([undefined, 'zstd', undefined, 'zlib'] as const)[i];
      const { manifest } = await backupPoint(request(disk, take, kind, { now, compress }));
      expect(manifest.image.compression).toBe(compress ?? 'none');
      ids.push(manifest.id);
      expect(manifest.kind).toBe(kind);
      // by default every kind leaves the whole-image SHA-256 to the point's first verify
      expect(manifest.hashes.sha256).toBeNull();
      expect(manifest.hashes.blocks).toHaveLength(take.cbtMap.length * 16);
      expect(manifest.cbt).toEqual({ ...take.cbt, blockCount: take.cbtMap.length });
      expect(manifest.device).toEqual(disk.device);
      expect(manifestSchema.safeParse(JSON.parse(await readFile(join(dir, 'chain', `${manifest.id}.json`), 'utf8'))).success).toBe(true);
    }
    const points = await loadPoints(join(dir, 'chain'));
    expect(points.map((p) => [p.kind, p.parent])).toEqual([
      ['full', null],
      ['incremental', ids[0]],
      ['differential', ids[0]],
      ['incremental', ids[2]],
    ]);
    expect(points.every((p) => p.full === ids[0])).toBe(true);
    expect(ids[0]).toBe('0001-20261201-140200-full');

    for (const [i, p] of points.entries()) {
      const file = join(dir, 'chain', p.image.file);
      expect((await qemuCheck(file)).ok).toBe(true);
      const raw = await saveRaw(join(dir, `take${i}.raw`), takes[i]!.image);
      expect((await qemuCompare(raw, 'raw', file, 'qcow2')).equal).toBe(true);
      const chain = JSON.parse((await run('qemu-img', ['info', '--backing-chain', '--output=json', file])).stdout) as { filename: string }[];
      const expectedChain = { 0: [0], 1: [1, 0], 2: [2, 0], 3: [3, 2, 0] }[i]!.map((k) => join(dir, 'chain', points[k]!.image.file));
      expect(chain.map((c) => c.filename)).toEqual(expectedChain);
      const v = await verifyPoint(join(dir, 'chain'), p.id);
      expect(v.problems).toEqual([]);
      expect(v.ok).toBe(true);
      expect((await readVerifyRecord(join(dir, 'chain'), p.id))?.sha256).toBe(takes[i]!.sha256);
      const target = join(dir, `restored${i}.raw`);
      const r = await restorePoint(join(dir, 'chain'), p.id, target);
      expect(r.sha256).toBe(takes[i]!.sha256);
      expect(sha256(await readFile(target))).toBe(takes[i]!.sha256);
    }
  });

  it('an incremental copies only the changed tracking blocks (sizes printed for 1% and 10%)', async () => {
    const size = 128 * MiB;
    for (const fraction of [0.01, 0.1]) {
      const disk = new CbtDisk(64 * KiB, size, 2);
      const full = disk.take();
      const chainDir = join(dir, `chain-${fraction}`);
      await backupPoint({ ...request(disk, full, 'full'), dir: chainDir });
      const changed = disk.changeBlocks(fraction, 7);
      const take = disk.take();
      const { manifest } = await backupPoint({ ...request(disk, take, 'incremental'), dir: chainDir, sha256: false });
      const fileBytes = (await stat(join(chainDir, manifest.image.file))).size;
      // header, L2 tables (one per 512 MiB), L1, one refcount block, the refcount table
      const metadata = 5 * 64 * KiB;
      console.log(`incremental with ${fraction * 100}% of ${changed.length === 0 ? 0 : disk.map.length} tracking blocks changed: ${fileBytes} bytes = ${((100 * fileBytes) / size).toFixed(2)}% of the ${size}-byte device (limit ${2 * fraction * 100}% + ${metadata} bytes of metadata)`);
      expect(manifest.sizes.changedBlocks).toBe(changed.length);
      expect(manifest.sizes.copiedBytes).toBe(changed.length * 64 * KiB);
      expect(fileBytes).toBeLessThanOrEqual(2 * fraction * size + metadata);
      expect(manifest.hashes.sha256).toBeNull();
      // the restored image is the take even though sha256 was skipped (block hashes are checked)
      const r = await restorePoint(chainDir, manifest.id, join(chainDir, '..', `r-${fraction}.raw`));
      expect(r.sha256).toBe(take.sha256);
    }
  });

  it('blocks smaller than a cluster, larger than a chunk, and a device size that is not a whole number of blocks', async () => {
    for (const [blockSize, size] of [[16 * KiB, 9 * MiB + 3 * 512], [8 * MiB, 20 * MiB + 4096]] as const) {
      const disk = new CbtDisk(blockSize, size, 3);
      const chainDir = join(dir, `c${blockSize}`);
      const first = disk.take();
      await backupPoint({ ...request(disk, first, 'full'), dir: chainDir });
      disk.changeBlocks(0.2, 5);
      const second = disk.take();
      for (const fast of [false, true]) {
        const sub = join(chainDir, fast ? 'fast' : 'slow');
        await backupPoint({ ...request(disk, first, 'full'), dir: sub });
        const { manifest } = await backupPoint({ ...request(disk, second, 'incremental'), dir: sub, sha256: !fast });
        const r = await restorePoint(sub, manifest.id, join(sub, 'restored.raw'));
        expect(r.sha256).toBe(second.sha256);
        expect((await verifyPoint(sub, manifest.id)).ok).toBe(true);
      }
    }
  });

  it('blocks the CBT missed are copied when the whole image is read (sha256: true; found by their hash)', async () => {
    const disk = new CbtDisk(64 * KiB, 8 * MiB, 4);
    await backupPoint(request(disk, disk.take(), 'full'));
    disk.data.fill(0x77, 2 * MiB, 2 * MiB + 100); // changed behind the tracker's back
    const take = disk.take();
    const { manifest } = await backupPoint(request(disk, take, 'incremental', { sha256: true }));
    expect(manifest.sizes.changedBlocks).toBe(0);
    expect(manifest.sizes.cbtMissedBlocks).toBe(1);
    expect(manifest.hashes.sha256).toBe(take.sha256);
    const r = await restorePoint(join(dir, 'chain'), manifest.id, join(dir, 'r.raw'));
    expect(r.sha256).toBe(take.sha256);
  });

  it('a raw full, continued by a qcow2 incremental over it', async () => {
    const disk = new CbtDisk(64 * KiB, 4 * MiB, 6);
    const full = await backupPoint(request(disk, disk.take(), 'full', { format: 'raw' }));
    expect(full.manifest.image.file).toMatch(/full\.raw$/);
    disk.changeBlocks(0.1, 3);
    const take = disk.take();
    const inc = await backupPoint(request(disk, take, 'incremental'));
    expect((await restorePoint(join(dir, 'chain'), inc.manifest.id, join(dir, 'r.raw'))).sha256).toBe(take.sha256);
    await expect(backupPoint(request(disk, disk.take(), 'incremental', { format: 'raw' }))).rejects.toThrow(/EINVAL: a raw image can only hold a full backup/);
  });

  it('reads the snapshot image from a BlockDevice, and refuses one whose size is not the device size', async () => {
    const disk = new CbtDisk(64 * KiB, 6 * MiB, 15);
    const take = disk.take();
    const image = await RawImage.open(await saveRaw(join(dir, 'image.raw'), take.image));
    try {
      // sha256: true hashes the image during the backup (take.sha256 is node's createHash of the take)
      const { manifest } = await backupPoint({ ...request(disk, take, 'full'), source: image, sha256: true });
      expect(manifest.hashes.sha256).toBe(take.sha256);
      await expect(backupPoint({ ...request(disk, take, 'full'), dir: join(dir, 'other'), source: image, device: { ...disk.device, size: 8 * MiB } })).rejects.toThrow(
        `EINVAL: the snapshot image ${join(dir, 'image.raw')} has ${6 * MiB} bytes, the device /dev/vdb ${8 * MiB}`,
      );
    } finally {
      await image.close();
    }
  });

  it.skipIf(noQemu)('[qemu-img] a full does not read the holes the source reports (extents), and still equals the source', async () => {
    const size = 8 * MiB;
    // the middle run fills 4 KiB of a 64 KiB cluster: the rest of that cluster is hole but must read as zeroes
    const dataRuns: [number, number][] = [[0, MiB], [3 * MiB + 4 * KiB, 3 * MiB + 8 * KiB], [5 * MiB, 6 * MiB]];
    const take = Buffer.alloc(size);
    const path = join(dir, 'sparse.raw');
    const fh = await open(path, 'w');
    await fh.truncate(size);
    for (const [s, e] of dataRuns) {
      randomFillSync(take, s, e - s);
      await fh.write(take, s, e - s, s);
    }
    await fh.close();
    const image = await RawImage.open(path);
    const { device: counting, reads } = countingDevice(image);
    const device = { path: '/dev/vdc', size };
    const cbt = { generationId: 'g', changeNumber: 1, blockSize: 64 * KiB };
    const cbtMap = new Uint8Array(size / (64 * KiB)).fill(1);
    try {
      const { manifest } = await backupPoint({ dir: join(dir, 'holes'), source: counting, device, cbt, cbtMap, kind: 'full' });
      // only the data runs were read, nothing of the holes
      expect(reads.length).toBeGreaterThan(0);
      for (const [s, e] of reads) expect(dataRuns.some(([ds, de]) => s >= ds && e <= de), `read ${s}-${e}`).toBe(true);
      expect(reads.reduce((n, [s, e]) => n + e - s, 0)).toBe(2 * MiB + 4 * KiB);
      // the holes stay unallocated clusters, the image equals the source
      expect(manifest.sizes.copiedBytes).toBe(2 * MiB + 64 * KiB);
      const file = join(dir, 'holes', manifest.image.file);
      expect((await qemuCompare(path, 'raw', file, 'qcow2')).equal).toBe(true);
      // the same block hashes as a backup that reads every byte of the same take
      const all = await backupPoint({ dir: join(dir, 'all'), source: readerOf(take), device, cbt, cbtMap, kind: 'full' });
      expect(manifest.hashes.blocks).toBe(all.manifest.hashes.blocks);
      // the first verify computes the SHA-256 from the backup: node's hash of the source
      expect((await verifyPoint(join(dir, 'holes'), manifest.id)).ok).toBe(true);
      expect((await readVerifyRecord(join(dir, 'holes'), manifest.id))?.sha256).toBe(sha256(take));
    } finally {
      await image.close();
    }
  });

  it('reports progress up to the total and restores to a flattened qcow2 too', async () => {
    const disk = new CbtDisk(64 * KiB, 10 * MiB, 8);
    const take = disk.take();
    const seen: { done: number; total: number }[] = [];
    const { manifest } = await backupPoint(request(disk, take, 'full', { onProgress: (p) => seen.push(p) }));
    expect(seen[0]).toEqual({ done: 0, total: 10 * MiB });
    expect(seen[seen.length - 1]).toEqual({ done: 10 * MiB, total: 10 * MiB });
    expect(seen.every((p, i) => i === 0 || p.done > seen[i - 1]!.done)).toBe(true);
    const r = await restorePoint(join(dir, 'chain'), manifest.id, join(dir, 'flat.qcow2'), { format: 'qcow2' });
    expect(r.sha256).toBe(take.sha256);
    await expect(restorePoint(join(dir, 'chain'), manifest.id, join(dir, 'flat.qcow2'))).rejects.toThrow(/EEXIST: the restore target .*flat\.qcow2 exists/);
  });

  it('an incremental from a BlockDevice reads each changed block with one call, without asking for holes', async () => {
    const disk = new CbtDisk(64 * KiB, 16 * MiB, 12);
    const open = async (take: Take, name: string): Promise<RawImage> => RawImage.open(await saveRaw(join(dir, name), take.image));
    const fullTake = disk.take();
    const fullImage = await open(fullTake, 'full.raw');
    const full = countingDevice(fullImage);
    disk.changeBlocks(0.05, 4);
    const incTake = disk.take();
    const incImage = await open(incTake, 'inc.raw');
    const inc = countingDevice(incImage);
    try {
      await backupPoint({ ...request(disk, fullTake, 'full'), source: full.device });
      expect(full.extentCalls.length).toBeGreaterThan(0); // a full skips the holes it is told of
      const { manifest } = await backupPoint({ ...request(disk, incTake, 'incremental'), source: inc.device });
      const changed = [...incTake.cbtMap.keys()].filter((b) => incTake.cbtMap[b]! > fullTake.cbt.changeNumber);
      expect(changed.length).toBeGreaterThan(0);
      expect(inc.extentCalls).toEqual([]);
      // one read per run of adjacent changed blocks, covering exactly the changed blocks
      const readBlocks = inc.reads.flatMap(([s, e]) => Array.from({ length: (e - s) / (64 * KiB) }, (_, i) => s / (64 * KiB) + i));
      expect(readBlocks).toEqual(changed);
      const runs = changed.filter((b, i) => i === 0 || changed[i - 1] !== b - 1).length;
      expect(inc.reads.length).toBe(runs);
      expect(await restorePoint(join(dir, 'chain'), manifest.id, join(dir, 'r.raw')).then((r) => r.sha256)).toBe(incTake.sha256);
    } finally {
      await fullImage.close();
      await incImage.close();
    }
  });

  it('an incremental reports as total only the bytes of the changed blocks it reads', async () => {
    const disk = new CbtDisk(64 * KiB, 16 * MiB, 9);
    await backupPoint(request(disk, disk.take(), 'full'));
    const changed = disk.changeBlocks(0.1, 3);
    const seen: { done: number; total: number }[] = [];
    await backupPoint(request(disk, disk.take(), 'incremental', { onProgress: (p) => seen.push(p) }));
    // 64 KiB blocks and clusters: one 64 KiB read per changed block, nothing else
    expect(changed.length).toBeGreaterThan(0);
    expect(seen[0]).toEqual({ done: 0, total: changed.length * 64 * KiB });
    expect(seen[seen.length - 1]).toEqual({ done: changed.length * 64 * KiB, total: changed.length * 64 * KiB });
  });
});

describe('the SHA-256 of an incremental is computed by its first verify', () => {
  it('recorded by the first verify, then checked by later verifies and by restore', async () => {
    const disk = new CbtDisk(64 * KiB, 8 * MiB, 12);
    const chain = join(dir, 'chain');
    await backupPoint(request(disk, disk.take(), 'full'));
    disk.changeBlocks(0.05, 4);
    const take = disk.take();
    const { manifest } = await backupPoint(request(disk, take, 'incremental'));
    expect(manifest.hashes.sha256).toBeNull();
    expect(await readVerifyRecord(chain, manifest.id)).toBeNull();
    expect((await verifyPoint(chain, manifest.id)).ok).toBe(true);
    // take.sha256 is node's createHash over the take's bytes, independent of the backup code
    expect((await readVerifyRecord(chain, manifest.id))?.sha256).toBe(take.sha256);
    // a recorded digest that is not the image's: the next verify and a restore both notice
    const other = 'ab'.repeat(32);
    const recordFile = join(chain, `${manifest.id}.verify.json`);
    const record = JSON.parse(await readFile(recordFile, 'utf8')) as Record<string, unknown>;
    await writeFile(recordFile, JSON.stringify({ ...record, sha256: other }));
    await expect(restorePoint(chain, manifest.id, join(dir, 'r.raw'))).rejects.toThrow(new RegExp(`EIO: .*its SHA-256 is ${take.sha256}, the image at take had ${other}`));
    const again = await verifyPoint(chain, manifest.id);
    expect(again.ok).toBe(false);
    expect(again.problems).toEqual([`the SHA-256 of the image is ${take.sha256}, the image at take had ${other} (computed by its first verify)`]);
    // a failed verify keeps the digest it was checking against, never the one it read
    expect((await readVerifyRecord(chain, manifest.id))?.sha256).toBe(other);
  });

  it('a verify that finds a wrong block records no SHA-256', async () => {
    const disk = new CbtDisk(64 * KiB, 4 * MiB, 13);
    const chain = join(dir, 'chain');
    await backupPoint(request(disk, disk.take(), 'full'));
    const changed = disk.changeBlocks(0.5, 5);
    const { manifest } = await backupPoint(request(disk, disk.take(), 'incremental'));
    // flip bytes in the middle of the incremental's data area (after its 64 KiB header cluster)
    const file = join(chain, manifest.image.file);
    const bytes = await readFile(file);
    expect(changed.length).toBeGreaterThan(1);
    bytes[64 * KiB + 100] = bytes[64 * KiB + 100]! ^ 0xff;
    await writeFile(file, bytes);
    const v = await verifyPoint(chain, manifest.id);
    expect(v.ok).toBe(false);
    expect(v.problems[0]).toMatch(/^tracking block \d+ \(bytes \d+-\d+\) differs from the image at take$/);
    expect((await readVerifyRecord(chain, manifest.id))?.sha256).toBeNull();
  });
});

describe('chain refusals say why in words', () => {
  async function chainWithFull(): Promise<{ disk: CbtDisk; now: () => Date }> {
    const disk = new CbtDisk(64 * KiB, 20 * MiB, 9);
    const now = clock();
    await backupPoint(request(disk, disk.take(), 'full', { now }));
    disk.changeBlocks(0.05, 1);
    return { disk, now };
  }

  it('a new generation id: the change tracker was reset', async () => {
    const { disk, now } = await chainWithFull();
    disk.reset();
    disk.changeBlocks(0.05, 2);
    const err = backupPoint(request(disk, disk.take(), 'incremental', { now }));
    await expect(err).rejects.toThrow('EINVAL: the backup chain cannot continue: the change tracker was reset (new generation id: the machine rebooted or the module was reloaded)');
    await expect(err).rejects.toMatchObject({ code: 'generation' });
  });

  it('a resized device: the device grew from 20 MiB to 30 MiB', async () => {
    const { disk, now } = await chainWithFull();
    const bigger = new CbtDisk(64 * KiB, 30 * MiB, 9, { ...disk.device, size: 30 * MiB });
    bigger.generationId = disk.generationId;
    bigger.active = disk.active;
    await expect(backupPoint(request(bigger, bigger.take(), 'incremental', { now }))).rejects.toThrow('the backup chain cannot continue: the device grew from 20 MiB to 30 MiB');
  });

  it('another device: the chain backs up one serial, not another', async () => {
    const { disk, now } = await chainWithFull();
    const take = disk.take();
    await expect(backupPoint({ ...request(disk, take, 'incremental', { now }), device: { ...disk.device, serial: 'B2' } })).rejects.toThrow(
      'the backup chain cannot continue: the chain backs up /dev/vdb (QEMU HARDDISK, serial A1), not /dev/vdb (QEMU HARDDISK, serial B2)',
    );
  });

  it('a missing parent: the previous backup 2026-12-01 14:02 UTC is missing', async () => {
    const { disk, now } = await chainWithFull();
    const [full] = await loadPoints(join(dir, 'chain'));
    await rm(join(dir, 'chain', full!.image.file));
    await expect(backupPoint(request(disk, disk.take(), 'incremental', { now }))).rejects.toThrow(
      'ENOENT: the backup chain cannot continue: the previous backup 2026-12-01 14:02 UTC is missing',
    );
  });

  it('a grandparent gone: the backup the chain builds on is missing', async () => {
    const { disk, now } = await chainWithFull();
    await backupPoint(request(disk, disk.take(), 'incremental', { now }));
    const [full] = await loadPoints(join(dir, 'chain'));
    await rm(join(dir, 'chain', full!.image.file));
    await expect(backupPoint(request(disk, disk.take(), 'incremental', { now }))).rejects.toThrow(
      'the backup chain cannot continue: the backup 2026-12-01 14:02 UTC is missing',
    );
  });

  it('a parent that failed verification is named with the first problem', async () => {
    const { disk, now } = await chainWithFull();
    const [full] = await loadPoints(join(dir, 'chain'));
    // flip a byte inside the first data cluster (cluster 1 of the file)
    const path = join(dir, 'chain', full!.image.file);
    const bytes = await readFile(path);
    bytes[64 * KiB + 10] = bytes[64 * KiB + 10]! ^ 0xff;
    await writeFile(path, bytes);
    const v = await verifyPoint(join(dir, 'chain'), full!.id);
    expect(v.ok).toBe(false);
    expect(v.problems[0]).toMatch(/^tracking block \d+ \(bytes \d+-\d+\) differs from the image at take$/);
    // the full left its SHA-256 to the first verify, which failed: no SHA-256 is sealed from the damaged image
    expect((await readVerifyRecord(join(dir, 'chain'), full!.id))?.sha256).toBeNull();
    await expect(backupPoint(request(disk, disk.take(), 'incremental', { now }))).rejects.toThrow(
      `EIO: the backup chain cannot continue: the previous backup 2026-12-01 14:02 UTC failed verification (${v.problems[0]!})`,
    );
  });

  it('no chain yet, a full into an existing chain, and the same take twice', async () => {
    const disk = new CbtDisk(64 * KiB, 4 * MiB, 10);
    const first = disk.take();
    await expect(backupPoint(request(disk, first, 'incremental'))).rejects.toThrow(`ENOENT: the backup chain cannot continue: there is no backup in ${join(dir, 'chain')} to continue from`);
    await backupPoint(request(disk, first, 'full', { now: clock() }));
    await expect(backupPoint(request(disk, first, 'full'))).rejects.toThrow(
      `EEXIST: ${join(dir, 'chain')} already holds a backup chain (last point 2026-12-01 14:02 UTC); a new full backup there needs an explicit allow-full`,
    );
    await expect(backupPoint(request(disk, first, 'incremental'))).rejects.toThrow(
      'EALREADY: the backup chain cannot continue: the previous backup 2026-12-01 14:02 UTC was made from this take or a later one (change number 1, now 1)',
    );
  });

  it('allowFull makes a new full in the same folder and says why', async () => {
    const { disk, now } = await chainWithFull();
    disk.reset();
    const take = disk.take();
    const res = await backupPoint(request(disk, take, 'incremental', { now, allowFull: true }));
    expect(res.manifest.kind).toBe('full');
    expect(res.manifest.parent).toBeNull();
    expect(res.manifest.sequence).toBe(2);
    expect(res.fullBecause).toBe('the change tracker was reset (new generation id: the machine rebooted or the module was reloaded)');
    // the new chain continues from the new full
    disk.changeBlocks(0.05, 4);
    const next = await backupPoint(request(disk, disk.take(), 'incremental', { now }));
    expect(next.manifest.parent).toBe(res.manifest.id);
    expect((await verifyChain(join(dir, 'chain'), next.manifest.id)).map((v) => v.ok)).toEqual([true, true]);
  });
});

describe('interrupted backups leave nothing that looks valid', () => {
  it('cancelled at the first, middle and last progress reports: earlier points untouched, no new file remains, the next run succeeds', async () => {
    const disk = new CbtDisk(64 * KiB, 24 * MiB, 11);
    await backupPoint(request(disk, disk.take(), 'full'));
    const chain = join(dir, 'chain');
    const before = (await readdir(chain)).sort();
    const fullBytes = await readFile(join(chain, before.find((n) => n.endsWith('.qcow2'))!));
    for (const stopAt of [0, 1, 3, 5, 6]) {
      disk.changeBlocks(0.1, 20 + stopAt);
      const take = disk.take();
      const ac = new AbortController();
      let calls = 0;
      const run = backupPoint(request(disk, take, 'incremental', {
        signal: ac.signal,
        onProgress: () => {
          if (calls++ === stopAt) ac.abort();
        },
      }));
      await expect(run).rejects.toThrow('ECANCELED: the backup was cancelled');
      expect((await readdir(chain)).sort()).toEqual(before);
      expect((await readFile(join(chain, before.find((n) => n.endsWith('.qcow2'))!))).equals(fullBytes)).toBe(true);
    }
    const take = disk.take();
    const ok = await backupPoint(request(disk, take, 'incremental'));
    expect((await restorePoint(chain, ok.manifest.id, join(dir, 'r.raw'))).sha256).toBe(take.sha256);
  });

  it('a cancelled restore leaves no target file', async () => {
    const disk = new CbtDisk(64 * KiB, 16 * MiB, 12);
    const { manifest } = await backupPoint(request(disk, disk.take(), 'full'));
    const ac = new AbortController();
    const target = join(dir, 'r.raw');
    await expect(restorePoint(join(dir, 'chain'), manifest.id, target, { signal: ac.signal, onProgress: (p) => p.done > 0 && ac.abort() })).rejects.toThrow(
      'ECANCELED: the restore was cancelled',
    );
    expect((await readdir(dir)).sort()).toEqual(['chain']);
  });

  it('leftovers of a killed run (partial files, an image without manifest, a stale lock) are removed by the next run', async () => {
    const disk = new CbtDisk(64 * KiB, 4 * MiB, 13);
    const chain = join(dir, 'chain');
    const first = await backupPoint(request(disk, disk.take(), 'full'));
    await writeFile(join(chain, '.partial-0002-20261201-150000-incremental.qcow2'), 'half');
    await writeFile(join(chain, '0002-20261201-150000-incremental.qcow2'), 'renamed, manifest never written');
    await writeFile(join(chain, '.lock'), '999999999\n'); // a pid that does not exist
    disk.changeBlocks(0.1, 1);
    const res = await backupPoint(request(disk, disk.take(), 'incremental'));
    expect(res.leftoversRemoved.sort()).toEqual(['.partial-0002-20261201-150000-incremental.qcow2', '0002-20261201-150000-incremental.qcow2']);
    expect(res.manifest.parent).toBe(first.manifest.id);
    expect((await readdir(chain)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('a lock held by a live process refuses a second job', async () => {
    const disk = new CbtDisk(64 * KiB, 4 * MiB, 14);
    await backupPoint(request(disk, disk.take(), 'full'));
    await writeFile(join(dir, 'chain', '.lock'), `${process.ppid}\n`);
    await expect(backupPoint(request(disk, disk.take(), 'incremental'))).rejects.toThrow(`EBUSY: another backup job (process ${process.ppid}) is working in ${join(dir, 'chain')}`);
  });

  it('two jobs of one process in one folder: the second is refused while the first runs', async () => {
    const disk = new CbtDisk(64 * KiB, 8 * MiB, 16);
    const take = disk.take();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((res) => (release = res));
    const slow = async (offset: number, length: number): Promise<Buffer> => {
      await gate;
      return Buffer.from(take.image.subarray(offset, offset + length));
    };
    const first = backupPoint({ ...request(disk, take, 'full'), source: slow });
    // the first job holds the lock while it waits for its first read
    while (!(await stat(join(dir, 'chain', '.lock')).then(() => true, () => false))) await new Promise((r) => setTimeout(r, 10));
    await expect(backupPoint(request(disk, take, 'full', { dir: join(dir, 'chain') }))).rejects.toThrow(`EBUSY: another backup job (process ${process.pid}) is working in ${join(dir, 'chain')}`);
    release();
    const done = await first;
    expect((await restorePoint(join(dir, 'chain'), done.manifest.id, join(dir, 'r.raw'))).sha256).toBe(take.sha256);
  });
});
