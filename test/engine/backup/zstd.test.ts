/**
 * zstd-compressed qcow2 (compression type 1): written by Qcow2Writer and checked with
 * qemu-img, and qemu-img's own zstd images read by Qcow2Image.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readImage } from '../../../engine/backup/image-source.js';
import { openImage } from '../../../engine/backup/qcow2-reader.js';
import { Qcow2Writer } from '../../../engine/backup/qcow2-writer.js';
import { loadZstd, zstdCompress, zstdDecompress, zstdFrameLength } from '../../../engine/backup/zstd.js';
import { hasCommand } from '../../helpers/env.js';
import { KiB, MiB, qemuCheck, qemuCompare, run, saveRaw, sparseImage, tempDir, writeAll } from './sparse-data.js';

const noQemu = !hasCommand('qemu-img');
const SIZE = 6 * MiB + 7 * 512;
let dir = '';
let cleanup: () => Promise<void> = async () => undefined;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('zstd'));
});
afterEach(async () => {
  await cleanup();
});

async function readWhole(path: string): Promise<Buffer> {
  const img = await openImage(path);
  try {
    return await readImage(img, 0, img.virtualSize);
  } finally {
    await img.close();
  }
}

describe('zstd frames', () => {
  it('finds the end of a frame followed by padding, and decompresses only up to it', async () => {
    await loadZstd();
    const text = Buffer.from('a cluster of a compressible log file\n'.repeat(2000)).subarray(0, 64 * KiB);
    const frame = zstdCompress(text);
    expect(frame.readUInt32LE(0)).toBe(0xfd2fb528); // the zstd magic, little-endian
    expect(frame.length).toBeLessThan(2 * KiB);
    const padded = Buffer.concat([frame, Buffer.alloc(700, 0x5a)]); // what follows up to a sector boundary
    expect(zstdFrameLength(padded)).toBe(frame.length);
    expect(zstdDecompress(padded, text.length).equals(text)).toBe(true);
    // two frames make one cluster (qemu may write it so)
    const halves = Buffer.concat([zstdCompress(text.subarray(0, 32 * KiB)), zstdCompress(text.subarray(32 * KiB)), Buffer.alloc(100)]);
    expect(zstdDecompress(halves, text.length).equals(text)).toBe(true);
    expect(() => zstdFrameLength(frame.subarray(0, frame.length - 3))).toThrow(/cut short/);
    expect(() => zstdDecompress(Buffer.alloc(600, 0x5a), text.length)).toThrow(/no zstd frame magic/);
  });
});

describe('zstd-compressed qcow2 checked by qemu-img', () => {
  it.skipIf(noQemu)('[qemu-img] our zstd image passes qemu-img check, says zstd, equals its source, is smaller, and reads back', async () => {
    const data = sparseImage({ size: SIZE, seed: 5, textFraction: 0.6 });
    const raw = await saveRaw(join(dir, 'src.raw'), data);
    const plain = join(dir, 'plain.qcow2');
    const packed = join(dir, 'zstd.qcow2');
    await writeAll(await Qcow2Writer.create({ path: plain, virtualSize: SIZE }), data);
    const w = await Qcow2Writer.create({ path: packed, virtualSize: SIZE, compress: 'zstd' });
    await writeAll(w, data);
    const check = await qemuCheck(packed);
    expect(check.output).toContain('No errors were found');
    expect(check.output).toMatch(/compressed clusters/);
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', packed])).stdout) as { 'format-specific': { data: { 'compression-type': string } } };
    expect(info['format-specific'].data['compression-type']).toBe('zstd');
    expect((await qemuCompare(raw, 'raw', packed, 'qcow2')).equal).toBe(true);
    expect((await stat(packed)).size).toBeLessThan((await stat(plain)).size * 0.85);
    expect((await readWhole(packed)).equals(data)).toBe(true);
  });

  it.skipIf(noQemu)('[qemu-img] an image qemu-img compressed with zstd reads as its source', async () => {
    const data = sparseImage({ size: SIZE, seed: 6, textFraction: 0.7 });
    const raw = await saveRaw(join(dir, 'src.raw'), data);
    const packed = join(dir, 'qemu-zstd.qcow2');
    await run('qemu-img', ['convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', 'compression_type=zstd', raw, packed]);
    const map = await run('qemu-img', ['check', packed]);
    expect(map.stdout).toMatch(/compressed clusters/);
    expect((await readWhole(packed)).equals(data)).toBe(true);
  });
});
