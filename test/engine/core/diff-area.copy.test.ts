/**
 * Copy-on-write by in-kernel copies (copy_file_range from the original into the
 * difference storage): runs of NEW chunks get regions back to back and are copied
 * with one call per contiguous group; chunks already copied are skipped; concurrent
 * writes to one chunk copy it once; a failed copy falls back to reading the chunks
 * into memory; a full storage fails the chunks as before. The image always reads
 * as the device did at take.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyRange } from '../../../engine/core/copy-range.js';
import { BUFFERED_STORAGE_FILE_OPS } from '../../../engine/core/diff-storage.js';
import type { StorageFileOps } from '../../../engine/core/diff-storage.js';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import type { EngineDevice } from '../../../engine/core/engine-device.js';
import { canUseLoop } from '../../helpers/env.js';
import { SMALL_PARAMS, tempDir } from './helpers.js';

const CHUNK = 4096; // SMALL_PARAMS: 4 KiB chunks
const SECTORS = CHUNK / 512;

function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (i * 7 + seed * 31 + (i >> 9)) & 0xff;
  return b;
}

interface Copy {
  posIn: number;
  pos: number;
  length: number;
}

/** The real in-kernel copy, with every call recorded (or failing with `failWith`). */
function recordingOps(calls: Copy[], failWith?: string): StorageFileOps {
  return {
    ...BUFFERED_STORAGE_FILE_OPS,
    copyFrom: (fdIn, posIn, fd, pos, length) => {
      calls.push({ posIn, pos, length });
      if (failWith) return Promise.reject(Object.assign(new Error(`simulated ${failWith}`), { code: failWith }));
      return copyRange(fdIn, posIn, fd, pos, length);
    },
  };
}

let dir: string;
let engine: EmbeddedEngine;

async function setUp(deviceBytes: number, ops: StorageFileOps, limitSectors = 1 << 20): Promise<{ atTake: Buffer; image: string }> {
  engine = createEmbeddedEngine({ params: SMALL_PARAMS, storageFile: ops });
  const atTake = pattern(deviceBytes, 1);
  fs.writeFileSync(path.join(dir, 'a.img'), atTake);
  await engine.addDevice({ path: path.join(dir, 'a.img'), name: 'a' });
  const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'diff'), limitSectors });
  await engine.snapshotAdd(id, 'a');
  await engine.snapshotTake(id);
  return { atTake, image: (await engine.snapshotInfo('a')).image };
}

function inMemoryChunks(): number {
  const da = (engine.device('a') as EngineDevice).tracker?.diffArea;
  if (!da) throw new Error('no difference area');
  return da.stats().inMemory;
}

beforeEach(() => {
  dir = tempDir('diff-copy');
});

afterEach(async () => {
  await engine.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('DiffArea copy-on-write by in-kernel copies', () => {
  it('a write over several chunks, some already copied, copies each run of the others once, into contiguous regions', async () => {
    const calls: Copy[] = [];
    const { atTake, image } = await setUp(64 * CHUNK, recordingOps(calls));
    const dev = engine.device('a');
    await dev.write(3 * CHUNK + 512, pattern(512, 2)); // chunk 3 first
    expect(calls).toEqual([{ posIn: 3 * CHUNK, pos: 0, length: CHUNK }]);
    // Chunks 1..6: runs 1-2 and 4-6 are NEW, chunk 3 is copied already.
    const data = pattern(6 * CHUNK, 3);
    await dev.write(CHUNK, data);
    expect(calls.slice(1)).toEqual([
      { posIn: 1 * CHUNK, pos: 1 * CHUNK, length: 2 * CHUNK },
      { posIn: 4 * CHUNK, pos: 3 * CHUNK, length: 3 * CHUNK },
    ]);
    expect(inMemoryChunks()).toBe(0);
    expect((await engine.image(image).read(0, 64 * CHUNK)).equals(atTake)).toBe(true);
    expect((await dev.read(CHUNK, 6 * CHUNK)).equals(data)).toBe(true);
    // Written again: nothing more to copy.
    await dev.write(0, pattern(8 * CHUNK, 4));
    expect(calls.slice(3)).toEqual([
      { posIn: 0, pos: 6 * CHUNK, length: CHUNK },
      { posIn: 7 * CHUNK, pos: 7 * CHUNK, length: CHUNK },
    ]);
    expect((await engine.image(image).read(0, 64 * CHUNK)).equals(atTake)).toBe(true);
  });

  it('concurrent writes to the same chunks copy each chunk once and the image keeps the content at take', async () => {
    const calls: Copy[] = [];
    const { atTake, image } = await setUp(64 * CHUNK, recordingOps(calls));
    const dev = engine.device('a');
    const writes = [];
    for (let i = 0; i < 16; i++) writes.push(dev.write(((i * 5) % 8) * CHUNK + (i % 4) * 512, pattern(2 * CHUNK, 10 + i)));
    await Promise.all(writes);
    const copiedSectors = calls.reduce((n, c) => n + c.length, 0) / 512;
    // Writes start in chunks 0..7 and span 2 or 3 chunks: chunks 0..9, each copied once.
    expect(copiedSectors).toBe(10 * SECTORS);
    const copied = new Set<number>();
    for (const c of calls) for (let p = c.posIn; p < c.posIn + c.length; p += CHUNK) copied.add(p / CHUNK);
    expect([...copied].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect((await engine.image(image).read(0, 64 * CHUNK)).equals(atTake)).toBe(true);
  });

  it('the last, shorter chunk of the device is copied to its end', async () => {
    const calls: Copy[] = [];
    const size = 10 * CHUNK + 1536;
    const { atTake, image } = await setUp(size, recordingOps(calls));
    await engine.device('a').write(0, pattern(size, 5));
    expect(calls).toEqual([{ posIn: 0, pos: 0, length: size }]);
    expect((await engine.image(image).read(0, size)).equals(atTake)).toBe(true);
  });

  it('a copy the file system refuses (EXDEV) falls back to reading the chunks into memory, and is not tried again', async () => {
    const calls: Copy[] = [];
    const { atTake, image } = await setUp(64 * CHUNK, recordingOps(calls, 'EXDEV'));
    const dev = engine.device('a');
    await dev.write(0, pattern(3 * CHUNK, 6));
    await dev.write(10 * CHUNK, pattern(3 * CHUNK, 7));
    expect(calls).toHaveLength(1);
    expect((await engine.snapshotInfo('a')).errorCode).toBe(0);
    expect((await engine.image(image).read(0, 64 * CHUNK)).equals(atTake)).toBe(true);
  });

  it.skipIf(!canUseLoop)('[root] a storage on a block device (loop), where the kernel refuses the copy (EINVAL), keeps the image equal to the take', async () => {
    const calls: Copy[] = [];
    engine = createEmbeddedEngine({ params: SMALL_PARAMS, storageFile: recordingOps(calls) });
    const atTake = pattern(64 * CHUNK, 1);
    fs.writeFileSync(path.join(dir, 'a.img'), atTake);
    fs.writeFileSync(path.join(dir, 'storage.img'), Buffer.alloc(1 << 20));
    const loop = execFileSync('losetup', ['--find', '--show', path.join(dir, 'storage.img')], { encoding: 'utf8' }).trim();
    try {
      await engine.addDevice({ path: path.join(dir, 'a.img'), name: 'a' });
      const fd = fs.openSync(loop, 'r+');
      const id = await engine.snapshotCreate({ diffStoragePath: loop, limitSectors: 2048, diffStorageFd: fd });
      await engine.snapshotAdd(id, 'a');
      await engine.snapshotTake(id);
      const { image } = await engine.snapshotInfo('a');
      await engine.device('a').write(0, pattern(5 * CHUNK, 9));
      await engine.device('a').write(20 * CHUNK, pattern(2 * CHUNK, 10));
      expect(calls).toHaveLength(1); // tried once, refused, then the buffered path for good
      expect((await engine.snapshotInfo('a')).errorCode).toBe(0);
      expect((await engine.image(image).read(0, 64 * CHUNK)).equals(atTake)).toBe(true);
      await engine.snapshotDestroy(id);
    } finally {
      await engine.close(); // closes the storage descriptor before the loop device goes
      engine = createEmbeddedEngine(); // for afterEach
      execFileSync('losetup', ['-d', loop]);
    }
  });

  it('a storage too small for the run fails the chunks beyond the limit with ENOSPC, as the buffered path does', async () => {
    const calls: Copy[] = [];
    // 2 chunks of room: a write of 4 NEW chunks cannot get all its regions.
    const { image } = await setUp(64 * CHUNK, recordingOps(calls), 2 * SECTORS);
    await engine.device('a').write(0, pattern(4 * CHUNK, 8));
    expect(calls).toEqual([]);
    // The chunks without a region fail in the store worker, which may finish after the write.
    const deadline = Date.now() + 5000;
    while ((await engine.snapshotInfo('a')).errorCode === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect((await engine.snapshotInfo('a')).errorCode).toBe(-28);
    await expect(engine.image(image).read(0, CHUNK)).rejects.toThrow(/difference storage is full/);
  });
});
