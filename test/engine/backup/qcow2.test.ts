import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readImage } from '../../../engine/backup/image-source.js';
import { Qcow2Image, openImage } from '../../../engine/backup/qcow2-reader.js';
import { Qcow2Writer } from '../../../engine/backup/qcow2-writer.js';
import { RawWriter } from '../../../engine/backup/raw-writer.js';
import { hasCommand } from '../../helpers/env.js';
import { seededRandom } from '../../helpers/seeded-random.js';
import { KiB, MiB, qemuCheck, qemuCompare, run, saveRaw, sparseImage, tempDir, writeAll } from './sparse-data.js';

const qemu = !hasCommand('qemu-img') || !hasCommand('qemu-io');
let dir = '';
let cleanup: () => Promise<void> = async () => undefined;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('qcow2'));
});
afterEach(async () => {
  await cleanup();
});

/** 6 MiB + 7 sectors: not a whole number of clusters, so the last one is partial. */
const SIZE = 6 * MiB + 7 * 512;

async function readWhole(path: string): Promise<Buffer> {
  const img = await openImage(path);
  try {
    return await readImage(img, 0, img.virtualSize);
  } finally {
    await img.close();
  }
}

describe('qcow2 writer checked by qemu-img', () => {
  it.skipIf(qemu)('[qemu-img] a full image passes qemu-img check and equals its source', async () => {
    const data = sparseImage({ size: SIZE, seed: 1 });
    const raw = await saveRaw(join(dir, 'src.raw'), data);
    const out = join(dir, 'full.qcow2');
    await writeAll(await Qcow2Writer.create({ path: out, virtualSize: SIZE }), data);
    const check = await qemuCheck(out);
    expect(check.output).toContain('No errors were found');
    expect(check.ok).toBe(true);
    expect((await qemuCompare(raw, 'raw', out, 'qcow2')).equal).toBe(true);
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', out])).stdout) as Record<string, unknown>;
    expect(info['format']).toBe('qcow2');
    expect(info['virtual-size']).toBe(SIZE);
    expect(info['cluster-size']).toBe(64 * KiB);
    expect((info['format-specific'] as { data: { compat: string } }).data.compat).toBe('1.1');
  });

  it.skipIf(qemu)('[qemu-img] zero clusters take no space: the file holds the data clusters and metadata only', async () => {
    const data = Buffer.alloc(64 * MiB);
    randomFill(data, 3 * MiB, 128 * KiB, 2); // two data clusters in a 64 MiB image
    const out = join(dir, 'sparse.qcow2');
    await writeAll(await Qcow2Writer.create({ path: out, virtualSize: data.length }), data);
    expect((await qemuCheck(out)).ok).toBe(true);
    // header + 2 data clusters + 1 L2 + 1 L1 + 1 refcount block + 1 refcount table
    expect((await stat(out)).size).toBe(7 * 64 * KiB);
    const map = JSON.parse((await run('qemu-img', ['map', '--output=json', out])).stdout) as { start: number; length: number; data: boolean }[];
    expect(map.filter((m) => m.data).map((m) => [m.start, m.length])).toEqual([[3 * MiB, 128 * KiB]]);
  });

  it.skipIf(qemu)('[qemu-img] a compressed image passes qemu-img check, equals its source and is smaller', async () => {
    const data = sparseImage({ size: SIZE, seed: 2, textFraction: 0.6 });
    const raw = await saveRaw(join(dir, 'src.raw'), data);
    const plain = join(dir, 'plain.qcow2');
    const packed = join(dir, 'packed.qcow2');
    await writeAll(await Qcow2Writer.create({ path: plain, virtualSize: SIZE }), data);
    const w = await Qcow2Writer.create({ path: packed, virtualSize: SIZE, compress: 'zlib' });
    await writeAll(w, data);
    const check = await qemuCheck(packed);
    expect(check.output).toContain('No errors were found');
    expect(check.output).toMatch(/compressed clusters/);
    expect((await qemuCompare(raw, 'raw', packed, 'qcow2')).equal).toBe(true);
    expect((await stat(packed)).size).toBeLessThan((await stat(plain)).size * 0.85);
  });

  it.skipIf(qemu)('[qemu-img] overlays with a relative backing file: check, compare and the chain in qemu-img info', async () => {
    const base = sparseImage({ size: SIZE, seed: 3 });
    const next = Buffer.from(base);
    randomFill(next, 1 * MiB, 192 * KiB, 4); // changed data
    next.fill(0, 4 * MiB, 4 * MiB + 128 * KiB); // zeroed where the base may hold data
    randomFill(next, 4 * MiB + 64 * KiB, 512, 9); // one sector changed inside the zeroed range
    await saveRaw(join(dir, 'next.raw'), next);
    await writeAll(await Qcow2Writer.create({ path: join(dir, 'base.qcow2'), virtualSize: SIZE }), base);
    const w = await Qcow2Writer.create({ path: join(dir, 'top.qcow2'), virtualSize: SIZE, backing: { file: 'base.qcow2', format: 'qcow2' }, compress: 'zlib' });
    // Only the changed clusters, as an incremental backup writes them.
    for (const [at, len] of [[MiB, 192 * KiB], [4 * MiB, 128 * KiB]] as const) await w.write(at, next.subarray(at, at + len));
    await w.finish();
    expect((await qemuCheck(join(dir, 'top.qcow2'))).ok).toBe(true);
    expect((await qemuCompare(join(dir, 'next.raw'), 'raw', join(dir, 'top.qcow2'), 'qcow2')).equal).toBe(true);
    const chain = JSON.parse((await run('qemu-img', ['info', '--backing-chain', '--output=json', join(dir, 'top.qcow2')])).stdout) as Record<string, unknown>[];
    expect(chain.map((c) => c['filename'])).toEqual([join(dir, 'top.qcow2'), join(dir, 'base.qcow2')]);
    expect(chain[0]!['backing-filename']).toBe('base.qcow2');
    expect(chain[0]!['backing-filename-format']).toBe('qcow2');
    // our reader agrees
    expect((await readWhole(join(dir, 'top.qcow2'))).equals(next)).toBe(true);
  });

  it.skipIf(qemu)('[qemu-img] an overlay over a raw backing file', async () => {
    const base = sparseImage({ size: SIZE, seed: 5 });
    await saveRaw(join(dir, 'base.raw'), base);
    const next = Buffer.from(base);
    randomFill(next, 2 * MiB, 64 * KiB, 6);
    await saveRaw(join(dir, 'next.raw'), next);
    const w = await Qcow2Writer.create({ path: join(dir, 'top.qcow2'), virtualSize: SIZE, backing: { file: 'base.raw', format: 'raw' } });
    await w.write(2 * MiB, next.subarray(2 * MiB, 2 * MiB + 64 * KiB));
    await w.finish();
    expect((await qemuCheck(join(dir, 'top.qcow2'))).ok).toBe(true);
    expect((await qemuCompare(join(dir, 'next.raw'), 'raw', join(dir, 'top.qcow2'), 'qcow2')).equal).toBe(true);
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', join(dir, 'top.qcow2')])).stdout) as Record<string, unknown>;
    expect(info['backing-filename-format']).toBe('raw');
  });
});

describe('qcow2 reader against files written by qemu-img', () => {
  async function qemuMade(args: string[], name: string): Promise<string> {
    const path = join(dir, name);
    await run('qemu-img', [...args.map((a) => a.replace('@', path))]);
    return path;
  }

  async function expectSameAsQemu(path: string): Promise<void> {
    const raw = join(dir, `${Math.random().toString(36).slice(2)}.raw`);
    await run('qemu-img', ['convert', '-O', 'raw', path, raw]);
    const expected = await readFile(raw);
    const img = await openImage(path);
    try {
      expect(img.virtualSize).toBe(expected.length);
      expect((await readImage(img, 0, img.virtualSize)).equals(expected)).toBe(true);
      // unaligned ranges, across cluster and L2 boundaries
      const rnd = seededRandom(77);
      for (let i = 0; i < 40; i++) {
        const off = Math.floor(rnd() * expected.length);
        const len = Math.min(expected.length - off, Math.floor(rnd() * 300 * KiB));
        expect((await readImage(img, off, len)).equals(expected.subarray(off, off + len))).toBe(true);
      }
    } finally {
      await img.close();
    }
  }

  it.skipIf(qemu)('[qemu-img] reads qemu-img convert output, plain and compressed, v3 and v2, several cluster sizes', async () => {
    const src = await saveRaw(join(dir, 'src.raw'), sparseImage({ size: SIZE, seed: 10, textFraction: 0.5 }));
    await expectSameAsQemu(await qemuMade(['convert', '-O', 'qcow2', src, '@'], 'a.qcow2'));
    await expectSameAsQemu(await qemuMade(['convert', '-c', '-O', 'qcow2', src, '@'], 'b.qcow2'));
    await expectSameAsQemu(await qemuMade(['convert', '-O', 'qcow2', '-o', 'compat=0.10', src, '@'], 'c.qcow2'));
    await expectSameAsQemu(await qemuMade(['convert', '-c', '-O', 'qcow2', '-o', 'cluster_size=4096', src, '@'], 'd.qcow2'));
    await expectSameAsQemu(await qemuMade(['convert', '-O', 'qcow2', '-o', 'cluster_size=2M', src, '@'], 'e.qcow2'));
  });

  it.skipIf(qemu)('[qemu-img] reads a qemu-made chain: relative backing, zero writes, discards, a larger overlay', async () => {
    const src = await saveRaw(join(dir, 'src.raw'), sparseImage({ size: SIZE, seed: 11 }));
    await run('qemu-img', ['convert', '-c', '-O', 'qcow2', src, join(dir, 'base.qcow2')]);
    await run('qemu-img', ['create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', join(dir, 'mid.qcow2')]);
    await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xab 1000k 200k', '-c', 'write -z 3M 256k', '-c', 'discard 5M 64k', join(dir, 'mid.qcow2')]);
    // the top overlay is larger than its backing file: the tail reads as zeroes
    await run('qemu-img', ['create', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', join(dir, 'top.qcow2'), String(SIZE + 2 * MiB)]);
    await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 2M 4k', '-c', `write -P 0x11 ${SIZE + MiB} 64k`, join(dir, 'top.qcow2')]);
    await expectSameAsQemu(join(dir, 'top.qcow2'));
    const img = await Qcow2Image.open(join(dir, 'top.qcow2'));
    expect(img.chain().map((c) => c.path)).toEqual(['top.qcow2', 'mid.qcow2', 'base.qcow2'].map((n) => join(dir, n)));
    await img.close();
  });

  it.skipIf(qemu)('[qemu-img] refuses an image with extended L2 entries, saying so', async () => {
    await run('qemu-img', ['create', '-f', 'qcow2', '-o', 'extended_l2=on', join(dir, 'x.qcow2'), '1M']);
    await expect(openImage(join(dir, 'x.qcow2'))).rejects.toThrow(/EOPNOTSUPP: .*extended L2 entries/);
  });

  it('a missing backing file is named in the error', async () => {
    const w = await Qcow2Writer.create({ path: join(dir, 'top.qcow2'), virtualSize: MiB, backing: { file: 'gone.qcow2', format: 'qcow2' } });
    await w.finish();
    await expect(openImage(join(dir, 'top.qcow2'))).rejects.toThrow(/ENOENT: .*its backing file .*gone\.qcow2 cannot be opened/);
  });
});

describe('qcow2 writer and reader round trip (seeded random sparse data)', () => {
  it('reads back what was written, for random images, cluster sizes, compression and write chunking', async () => {
    for (let seed = 100; seed < 112; seed++) {
      const rnd = seededRandom(seed);
      const clusterSize = [4 * KiB, 64 * KiB, 256 * KiB][Math.floor(rnd() * 3)]!;
      const size = (1 + Math.floor(rnd() * 4 * 2048)) * 512 + MiB;
      const data = sparseImage({ size, seed, density: rnd(), textFraction: rnd() });
      const compress = rnd() < 0.5 ? ('zlib' as const) : undefined;
      const path = join(dir, `r${seed}.qcow2`);
      const chunk = clusterSize * (1 + Math.floor(rnd() * 20));
      await writeAll(await Qcow2Writer.create({ path, virtualSize: size, clusterSize, compress }), data, chunk);
      const img = await openImage(path);
      expect(img.virtualSize).toBe(size);
      expect((await readImage(img, 0, size)).equals(data)).toBe(true);
      for (let i = 0; i < 10; i++) {
        const off = Math.floor(rnd() * size);
        const len = Math.floor(rnd() * (size - off));
        expect((await readImage(img, off, len)).equals(data.subarray(off, off + len))).toBe(true);
      }
      await img.close();
    }
  });

  it('an overlay reads its own clusters, zeroes where it zeroed, and the backing file elsewhere', async () => {
    const base = sparseImage({ size: 2 * MiB, seed: 20, density: 1 });
    await writeAll(await Qcow2Writer.create({ path: join(dir, 'b.qcow2'), virtualSize: base.length }), base);
    const w = await Qcow2Writer.create({ path: join(dir, 't.qcow2'), virtualSize: base.length, backing: { file: 'b.qcow2', format: 'qcow2' } });
    const mine = Buffer.alloc(64 * KiB, 0x42);
    await w.write(64 * KiB, mine);
    await w.write(192 * KiB, Buffer.alloc(64 * KiB));
    const summary = await w.finish();
    expect(summary.zeroClusters).toBe(1);
    const got = await readWhole(join(dir, 't.qcow2'));
    const expected = Buffer.from(base);
    mine.copy(expected, 64 * KiB);
    expected.fill(0, 192 * KiB, 256 * KiB);
    expect(got.equals(expected)).toBe(true);
  });

  it('refuses writes out of order or not on a cluster boundary', async () => {
    const w = await Qcow2Writer.create({ path: join(dir, 'o.qcow2'), virtualSize: MiB });
    await w.write(128 * KiB, Buffer.alloc(64 * KiB, 1));
    await expect(w.write(0, Buffer.alloc(64 * KiB, 1))).rejects.toThrow(/EINVAL: .*not cluster-aligned, in order/);
    await expect(w.write(300 * KiB, Buffer.alloc(64 * KiB, 1))).rejects.toThrow(/EINVAL: .*not cluster-aligned, in order/);
    await w.abort();
    await expect(stat(join(dir, 'o.qcow2'))).rejects.toThrow(/ENOENT/);
  });

  it.skipIf(qemu)('[qemu-img] an unfinished file has no qcow2 header: qemu-img sees raw bytes, our reader too', async () => {
    const path = join(dir, 'unfinished.qcow2');
    const w = await Qcow2Writer.create({ path, virtualSize: MiB });
    await w.write(0, Buffer.alloc(256 * KiB, 7));
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', path])).stdout) as Record<string, unknown>;
    expect(info['format']).toBe('raw');
    const img = await openImage(path);
    expect(img).not.toBeInstanceOf(Qcow2Image);
    await img.close();
    await w.abort();
  });

  it('is a read-only BlockDevice: sector-aligned reads, writes refused', async () => {
    const data = sparseImage({ size: MiB, seed: 30, density: 1 });
    await writeAll(await Qcow2Writer.create({ path: join(dir, 'd.qcow2'), virtualSize: MiB }), data);
    const dev = await Qcow2Image.open(join(dir, 'd.qcow2'));
    expect(dev.capacity).toBe(MiB);
    expect(dev.readOnly).toBe(true);
    expect((await dev.read(4096, 8192)).equals(data.subarray(4096, 12288))).toBe(true);
    const target = Buffer.alloc(1024);
    await dev.readTo(512, 512, target, 512);
    expect(target.subarray(512).equals(data.subarray(512, 1024))).toBe(true);
    await expect(dev.read(100, 512)).rejects.toThrow(/EINVAL: .*multiples of 512/);
    await expect(dev.read(MiB, 512)).rejects.toThrow(/EINVAL: .*beyond the capacity/);
    await expect(dev.write(0, Buffer.alloc(512))).rejects.toThrow(/EROFS/);
    await expect(dev.writeZeroes(0, 512)).rejects.toThrow(/EROFS/);
    await expect(dev.discard(0, 512)).rejects.toThrow(/EROFS/);
    await dev.close();
  });
});

describe('sparse raw writer', () => {
  it('writes the data, leaves zero clusters as holes and sizes the file to the image', async () => {
    const data = Buffer.alloc(32 * MiB);
    randomFill(data, 5 * MiB, 256 * KiB, 40);
    randomFill(data, 20 * MiB + 512, 1024, 41);
    const path = join(dir, 'out.raw');
    await writeAll(await RawWriter.create({ path, virtualSize: data.length }), data);
    const st = await stat(path);
    expect(st.size).toBe(data.length);
    expect(st.blocks * 512).toBeLessThan(2 * MiB);
    expect((await readFile(path)).equals(data)).toBe(true);
  });

  it('abort removes the unfinished file', async () => {
    const path = join(dir, 'x.raw');
    const w = await RawWriter.create({ path, virtualSize: MiB });
    await w.write(0, Buffer.alloc(64 * KiB, 3));
    await w.abort();
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
    await writeFile(path, 'exists');
    await expect(RawWriter.create({ path, virtualSize: MiB })).rejects.toThrow(/EEXIST/);
  });
});

function randomFill(buf: Buffer, at: number, len: number, seed: number): void {
  const rnd = seededRandom(seed);
  for (let i = 0; i < len; i++) buf[at + i] = 1 + Math.floor(rnd() * 255);
}
