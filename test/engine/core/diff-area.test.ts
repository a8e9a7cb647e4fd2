/**
 * Image reads through the difference area: one read over chunks in every state
 * (NEW runs from the original, STORED runs from the storage, IN_MEMORY from the
 * buffers), into a caller's buffer (readTo), and the failure of a read that an
 * original write may have overtaken once the area is corrupted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import { MAX_BATCH } from '../../../engine/core/diff-area.js';
import { DiffBufferPool } from '../../../engine/core/diff-buffer.js';
import { BUFFERED_STORAGE_FILE_OPS, REAL_STORAGE_FILE_OPS } from '../../../engine/core/diff-storage.js';
import type { StorageFileOps } from '../../../engine/core/diff-storage.js';
import type { EngineDevice } from '../../../engine/core/engine-device.js';
import type { BlockDevice } from '../../../engine/core/block-device.js';
import { expectErrno, makeImage, SMALL_PARAMS, tempDir } from './helpers.js';

const KiB = 1024;
const CHUNK = 4 * KiB; // SMALL_PARAMS: 4 KiB chunks
const DEVICE = 64 * CHUNK;

let dir: string;
let engine: EmbeddedEngine;
/** The snapshot takeSnapshot() took last. */
let lastSnapshot: Awaited<ReturnType<EmbeddedEngine['snapshotCreate']>>;

function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (i * 13 + seed) & 0xff;
  return b;
}

async function takeSnapshot(limitSectors: number, params = {}, storageFile?: StorageFileOps): Promise<string> {
  await engine.close();
  engine = createEmbeddedEngine({ params: { ...SMALL_PARAMS, ...params }, ...(storageFile ? { storageFile } : {}) });
  fs.writeFileSync(path.join(dir, 'a.img'), pattern(DEVICE, 1));
  await engine.addDevice({ path: path.join(dir, 'a.img'), name: 'a' });
  const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, `diff-${Date.now()}`), limitSectors });
  lastSnapshot = id;
  await engine.snapshotAdd(id, 'a');
  await engine.snapshotTake(id);
  return (await engine.snapshotInfo('a')).image;
}

/**
 * A snapshot whose image has chunks in every state: a queue of 4, so the first
 * chunks copied are stored and the last ones stay in memory (buffered path).
 * Stored regions follow the store order: chunks 9, 3, 4, 5 (3-5 contiguous in
 * storage), 20..30 one by one; chunks 40-42 likely still queued in memory.
 */
async function imageInEveryState(ops: StorageFileOps): Promise<{ imageName: string; dev: BlockDevice }> {
  const imageName = await takeSnapshot(1 << 20, { chunkMaximumInQueue: 4 }, ops);
  const dev = engine.device('a');
  for (const c of [9, 3, 4, 5, 20, 22, 21, 24, 23, 26, 25, 30]) await dev.write(c * CHUNK + 512, pattern(1024, c));
  await dev.write(40 * CHUNK, pattern(3 * CHUNK, 99));
  return { imageName, dev };
}

/** Reads over chunks in every state (imageInEveryState). */
const MIXED_READS = [
  [0, DEVICE],
  [2 * CHUNK + 512, 8 * CHUNK],
  [19 * CHUNK + 3584, 12 * CHUNK + 1024],
  [41 * CHUNK + 512, 512],
] as const;

beforeEach(() => {
  dir = tempDir('diff-area');
  makeImage(dir, 'a.img', DEVICE);
  engine = createEmbeddedEngine({ params: SMALL_PARAMS });
});

afterEach(async () => {
  await engine.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('DiffArea image reads', () => {
  it.each([
    ['chunks read into memory', BUFFERED_STORAGE_FILE_OPS],
    ['chunks copied by the kernel', REAL_STORAGE_FILE_OPS],
  ] as const)('one read over NEW, IN_MEMORY and STORED chunks (contiguous and scattered regions) gives the content at take (%s)', async (_label, ops) => {
    const { imageName, dev } = await imageInEveryState(ops);
    const atTake = pattern(DEVICE, 1);
    const img = engine.image(imageName);
    for (const [offset, length] of MIXED_READS) {
      const got = await img.read(offset, length);
      expect(got.equals(atTake.subarray(offset, offset + length)), `read ${offset}+${length}`).toBe(true);
    }
    // The original has the new data.
    expect((await dev.read(40 * CHUNK, 3 * CHUNK)).equals(pattern(3 * CHUNK, 99))).toBe(true);
  });

  it.each([
    ['chunks read into memory', BUFFERED_STORAGE_FILE_OPS],
    ['chunks copied by the kernel', REAL_STORAGE_FILE_OPS],
  ] as const)('readToNow (the NBD fast path) gives the content at take over NEW, IN_MEMORY and STORED chunks, at once (%s)', async (_label, ops) => {
    const { imageName } = await imageInEveryState(ops);
    const atTake = pattern(DEVICE, 1);
    const img = engine.image(imageName);
    for (const [offset, length] of [...MIXED_READS, [63 * CHUNK, CHUNK] as const]) {
      const target = Buffer.alloc(length + 8, 0xee);
      // It declines while the store worker still holds a chunk of the range; it answers once none is held.
      let answered = false;
      for (let tries = 0; tries < 200 && !answered; tries++) {
        answered = img.readToNow!(offset, length, target, 4);
        if (!answered) await new Promise((r) => setTimeout(r, 5));
      }
      expect(answered, `readToNow ${offset}+${length}`).toBe(true);
      expect(target.subarray(4, 4 + length).equals(atTake.subarray(offset, offset + length)), `bytes ${offset}+${length}`).toBe(true);
      // Nothing outside the asked part was touched.
      expect([...target.subarray(0, 4), ...target.subarray(4 + length)]).toEqual(new Array(8).fill(0xee));
    }
  });

  it('readToNow declines while a chunk of the range is being written, and once the image is released', async () => {
    const imageName = await takeSnapshot(1 << 20, {}, REAL_STORAGE_FILE_OPS);
    const dev = engine.device('a');
    await dev.write(9 * CHUNK, pattern(CHUNK, 7)); // chunk 9 copied to the storage
    const img = engine.image(imageName);
    const target = Buffer.alloc(CHUNK);
    expect(img.readToNow!(9 * CHUNK, CHUNK, target, 0)).toBe(true);
    expect(target.equals(pattern(DEVICE, 1).subarray(9 * CHUNK, 10 * CHUNK))).toBe(true);
    // An image write of chunk 9 holds its lock from its first step: the fast path steps aside.
    const written = img.write(9 * CHUNK, pattern(CHUNK, 55));
    expect(img.readToNow!(9 * CHUNK, CHUNK, target, 0)).toBe(false);
    expect(img.readToNow!(10 * CHUNK, CHUNK, target, 0)).toBe(true); // other chunks are free
    await written;
    expect(img.readToNow!(9 * CHUNK, CHUNK, target, 0)).toBe(true);
    expect(target.equals(pattern(CHUNK, 55))).toBe(true);
    // readTo serves whatever the fast path declines, with the same bytes.
    await img.readTo!(30 * CHUNK, CHUNK, target, 0);
    expect(target.equals(pattern(DEVICE, 1).subarray(30 * CHUNK, 31 * CHUNK))).toBe(true);
    // A released image answers nothing at once.
    await engine.snapshotDestroy(lastSnapshot);
    expect(img.readToNow!(10 * CHUNK, CHUNK, target, 0)).toBe(false);
  });

  it('extentsNow gives the image\'s holes at once (the original\'s holes, minus the chunks copied), as extents() does, and stops at maxRuns', async () => {
    await engine.close();
    engine = createEmbeddedEngine({ params: SMALL_PARAMS, storageFile: REAL_STORAGE_FILE_OPS });
    const file = path.join(dir, 's.img');
    fs.writeFileSync(file, '');
    fs.truncateSync(file, DEVICE);
    const fd = fs.openSync(file, 'r+');
    for (const c of [10, 20]) fs.writeSync(fd, pattern(CHUNK, c), 0, CHUNK, c * CHUNK);
    fs.closeSync(fd);
    await engine.addDevice({ path: file, name: 's' });
    const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'diff-s'), limitSectors: 1 << 20 });
    await engine.snapshotAdd(id, 's');
    await engine.snapshotTake(id);
    await engine.device('s').write(30 * CHUNK, pattern(CHUNK, 30)); // a hole at take, copied: the image holds it
    const img = engine.image((await engine.snapshotInfo('s')).image);
    const runs = (offset: number, length: number, hole: boolean): { offset: number; length: number; hole: boolean } => ({ offset, length, hole });
    const expected = [
      runs(0, 10 * CHUNK, true),
      runs(10 * CHUNK, CHUNK, false),
      runs(11 * CHUNK, 9 * CHUNK, true),
      runs(20 * CHUNK, CHUNK, false),
      runs(21 * CHUNK, 9 * CHUNK, true),
      runs(30 * CHUNK, CHUNK, false),
      runs(31 * CHUNK, DEVICE - 31 * CHUNK, true),
    ];
    expect(img.extentsNow!(0, DEVICE)).toEqual(expected);
    expect(await img.extents!(0, DEVICE)).toEqual(expected);
    expect(img.extentsNow!(0, DEVICE, 3)).toEqual(expected.slice(0, 3));
    expect(img.extentsNow!(10 * CHUNK + 512, 1024, 2)).toEqual([runs(10 * CHUNK + 512, 1024, false)]);
    await engine.snapshotDestroy(id);
    expect(() => img.extentsNow!(0, CHUNK)).toThrow();
  });

  it('readTo fills only the asked part of the target, for the image and the device', async () => {
    const imageName = await takeSnapshot(1 << 20);
    const dev = engine.device('a');
    await dev.write(4 * CHUNK, pattern(2 * CHUNK, 7));
    const img = engine.image(imageName);
    for (const [bd, want] of [
      [img, pattern(DEVICE, 1).subarray(3 * CHUNK, 7 * CHUNK)],
      [dev, Buffer.concat([pattern(DEVICE, 1).subarray(3 * CHUNK, 4 * CHUNK), pattern(2 * CHUNK, 7), pattern(DEVICE, 1).subarray(6 * CHUNK, 7 * CHUNK)])],
    ] as const) {
      const target = Buffer.alloc(4 * CHUNK + 100, 0xee);
      await bd.readTo!(3 * CHUNK, 4 * CHUNK, target, 50);
      expect(target.subarray(50, 50 + 4 * CHUNK).equals(want)).toBe(true);
      expect(target.subarray(0, 50).every((b) => b === 0xee)).toBe(true);
      expect(target.subarray(50 + 4 * CHUNK).every((b) => b === 0xee)).toBe(true);
      await expectErrno(bd.readTo!(0, 4 * CHUNK, target, 200), 'EINVAL');
      await expectErrno(bd.readTo!(100, 512, target, 0), 'EINVAL');
    }
  });

  it('a read of the original overtaken by a write after the area got corrupted fails with EIO', async () => {
    // Limit 0: the first chunk stored overflows the storage and corrupts the area.
    const imageName = await takeSnapshot(0);
    const dev = engine.device('a') as EngineDevice;
    // Hold the image's reads of the original until the writes below have landed.
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const raw = dev.raw;
    const readInto = raw.readInto.bind(raw);
    raw.readInto = async (buf, off, len, pos) => {
      await held;
      return readInto(buf, off, len, pos);
    };
    const reading = engine.image(imageName).read(0, CHUNK);
    const outcome = reading.then(
      (data) => ({ data, err: null }),
      (err: unknown) => ({ data: null, err }),
    );
    await dev.write(8 * CHUNK, pattern(CHUNK, 5)); // copy-on-write, store fails: corrupted
    expect((await engine.snapshotInfo('a')).errorCode).toBe(-28);
    await dev.write(0, pattern(CHUNK, 6)); // no copy-on-write any more: lands on the original
    release();
    const { data, err } = await outcome;
    expect(data).toBeNull();
    await expectErrno(Promise.reject(err), 'EIO');
  });
});

describe('DiffArea copy-on-write errors', () => {
  it('no memory for a chunk buffer: the area is corrupted with -ENOMEM, the original write lands, no chunk stays locked', async () => {
    // Chunk buffers are only taken where chunks are read into memory (no in-kernel copy).
    const imageName = await takeSnapshot(1 << 20, {}, BUFFERED_STORAGE_FILE_OPS);
    const dev = engine.device('a');
    const spy = vi.spyOn(DiffBufferPool.prototype, 'take').mockImplementationOnce(() => {
      throw new RangeError('Array buffer allocation failed');
    });
    try {
      await dev.write(0, pattern(2 * CHUNK, 9));
    } finally {
      spy.mockRestore();
    }
    expect((await dev.read(0, 2 * CHUNK)).equals(pattern(2 * CHUNK, 9))).toBe(true);
    expect((await engine.snapshotInfo('a')).errorCode).toBe(-12);
    // Later writes to the same chunks do not wait for a lock nobody will release.
    const again = dev.write(0, pattern(2 * CHUNK, 10)).then(() => 'done');
    const timeout = new Promise((resolve) => setTimeout(() => resolve('hung'), 2000));
    expect(await Promise.race([again, timeout])).toBe('done');
    await expectErrno(engine.image(imageName).read(0, CHUNK), 'EIO');
    const [id] = await engine.snapshotCollect();
    await engine.snapshotDestroy(id!);
  });
});

describe('DiffArea copy-on-write backpressure', () => {
  it('a write-zeroes over the whole device holds at most the store-queue bound of chunk buffers, and the image keeps the old data', async () => {
    // 16 MiB = 4096 chunks of 4 KiB; the queue bound is 2 + 2 = 4 chunks.
    const params = { chunkMaximumInQueue: 2, freeDiffBufferPoolSize: 2, diffStorageMinimum: 1 << 16 };
    const size = 16 << 20;
    await engine.close();
    // The buffered copy-on-write path (the in-kernel copy holds no chunk buffers).
    engine = createEmbeddedEngine({ params: { ...SMALL_PARAMS, ...params }, storageFile: BUFFERED_STORAGE_FILE_OPS });
    fs.writeFileSync(path.join(dir, 'big.img'), pattern(size, 3));
    await engine.addDevice({ path: path.join(dir, 'big.img'), name: 'big' });
    const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'diff-big'), limitSectors: 1 << 20 });
    await engine.snapshotAdd(id, 'big');
    await engine.snapshotTake(id);
    let peak = 0;
    const take = DiffBufferPool.prototype.take;
    const spy = vi.spyOn(DiffBufferPool.prototype, 'take').mockImplementation(function (this: DiffBufferPool) {
      const buf = take.call(this);
      peak = Math.max(peak, this.inUse);
      return buf;
    });
    try {
      await engine.device('big').writeZeroes(0, size);
    } finally {
      spy.mockRestore();
    }
    // The queue (bound + one run of the writer) plus one batch being stored.
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(4 + 2 * MAX_BATCH);
    const { image, errorCode } = await engine.snapshotInfo('big');
    expect(errorCode).toBe(0);
    expect((await engine.image(image).read(0, size)).equals(pattern(size, 3))).toBe(true);
    expect((await engine.device('big').read(0, size)).every((b) => b === 0)).toBe(true);
  });
});
