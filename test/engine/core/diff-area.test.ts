/**
 * Image reads through the difference area: one read over chunks in every state
 * (NEW runs from the original, STORED runs from the storage, IN_MEMORY from the
 * buffers), into a caller's buffer (readTo), and the failure of a read that an
 * original write may have overtaken once the area is corrupted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import type { EngineDevice } from '../../../engine/core/engine-device.js';
import { expectErrno, makeImage, SMALL_PARAMS, tempDir } from './helpers.js';

const KiB = 1024;
const CHUNK = 4 * KiB; // SMALL_PARAMS: 4 KiB chunks
const DEVICE = 64 * CHUNK;

let dir: string;
let engine: EmbeddedEngine;

function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (i * 13 + seed) & 0xff;
  return b;
}

async function takeSnapshot(limitSectors: number, params = {}): Promise<string> {
  await engine.close();
  engine = createEmbeddedEngine({ params: { ...SMALL_PARAMS, ...params } });
  fs.writeFileSync(path.join(dir, 'a.img'), pattern(DEVICE, 1));
  await engine.addDevice({ path: path.join(dir, 'a.img'), name: 'a' });
  const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, `diff-${Date.now()}`), limitSectors });
  await engine.snapshotAdd(id, 'a');
  await engine.snapshotTake(id);
  return (await engine.snapshotInfo('a')).image;
}

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
  it('one read over NEW, IN_MEMORY and STORED chunks (contiguous and scattered regions) gives the content at take', async () => {
    // A queue of 4: the first chunks copied are stored, the last ones stay in memory.
    const imageName = await takeSnapshot(1 << 20, { chunkMaximumInQueue: 4 });
    const atTake = pattern(DEVICE, 1);
    const dev = engine.device('a');
    // Stored regions follow the store order: chunks 9, 3, 4, 5 (3-5 contiguous in storage), 20..30 one by one.
    for (const c of [9, 3, 4, 5, 20, 22, 21, 24, 23, 26, 25, 30]) await dev.write(c * CHUNK + 512, pattern(1024, c));
    await dev.write(40 * CHUNK, pattern(3 * CHUNK, 99)); // chunks 40-42, likely still queued in memory
    const img = engine.image(imageName);
    for (const [offset, length] of [
      [0, DEVICE],
      [2 * CHUNK + 512, 8 * CHUNK],
      [19 * CHUNK + 3584, 12 * CHUNK + 1024],
      [41 * CHUNK + 512, 512],
    ] as const) {
      const got = await img.read(offset, length);
      expect(got.equals(atTake.subarray(offset, offset + length)), `read ${offset}+${length}`).toBe(true);
    }
    // The original has the new data.
    expect((await dev.read(40 * CHUNK, 3 * CHUNK)).equals(pattern(3 * CHUNK, 99))).toBe(true);
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
