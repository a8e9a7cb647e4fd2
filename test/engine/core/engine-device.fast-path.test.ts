/**
 * EngineDevice.writeNow / readToNow: the synchronous path the NBD server uses
 * keeps every promise of the asynchronous one (tracking, copy-on-write, the gate).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import type { EngineDevice } from '../../../engine/core/engine-device.js';
import { expectErrno, makeImage, SMALL_PARAMS, tempDir } from './helpers.js';

const MiB = 1 << 20;
let dir: string;
let engine: EmbeddedEngine;
let dev: EngineDevice;

beforeEach(async () => {
  dir = tempDir('fast-path');
  engine = createEmbeddedEngine({ params: SMALL_PARAMS });
  await engine.addDevice({ path: makeImage(dir, 'a.img', MiB, 0xaa), name: 'a' });
  dev = engine.device('a') as EngineDevice;
});

afterEach(async () => {
  await engine.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function takeSnapshot(): Promise<string> {
  const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'diff'), limitSectors: 1 << 16 });
  await engine.snapshotAdd(id, 'a');
  await engine.snapshotTake(id);
  return (await engine.snapshotInfo('a')).image;
}

describe('EngineDevice fast path', () => {
  it('writeNow writes at once; readToNow reads it back from the page cache', async () => {
    expect(dev.writeNow(8192, [Buffer.alloc(4096, 1)])).toBe(true);
    expect((await dev.read(8192, 4096)).every((b) => b === 1)).toBe(true);
    const target = Buffer.alloc(4096 + 16, 0xff);
    expect(dev.readToNow(8192 - 512, 4096, target, 16)).toBe(true);
    expect(target.subarray(16, 16 + 512).every((b) => b === 0xaa)).toBe(true);
    expect(target.subarray(16 + 512).every((b) => b === 1)).toBe(true);
    expect(target.subarray(0, 16).every((b) => b === 0xff)).toBe(true);
  });

  it('refuses (false, nothing written) a write larger than the inline limit', async () => {
    expect(dev.writeNow(0, [Buffer.alloc(512 * 1024, 2)])).toBe(false);
    expect((await dev.read(0, 512)).every((b) => b === 0xaa)).toBe(true);
  });

  it('with a snapshot held: refuses a write whose chunk is not copied yet, takes it once copy-on-write was done', async () => {
    const image = engine.image(await takeSnapshot());
    expect(dev.writeNow(0, [Buffer.alloc(4096, 3)])).toBe(false);
    expect((await dev.read(0, 4096)).every((b) => b === 0xaa)).toBe(true); // untouched
    await dev.write(0, Buffer.alloc(512, 4)); // copies chunk 0 on write
    expect(dev.writeNow(0, [Buffer.alloc(4096, 3)])).toBe(true);
    expect((await dev.read(0, 4096)).every((b) => b === 3)).toBe(true);
    expect((await image.read(0, 4096)).every((b) => b === 0xaa)).toBe(true); // the image keeps the content at take
  });

  it('marks the CBT write table like write()', async () => {
    const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'diff'), limitSectors: 1 << 16 });
    await engine.snapshotAdd(id, 'a'); // tracked, not taken: no copy-on-write to wait for
    const blocks = (await engine.cbtInfo('a')).blockCount;
    expect((await engine.cbtMapActive('a', 0, blocks)).every((n) => n === 0)).toBe(true);
    expect(dev.writeNow(5 * 4096 + 1024, [Buffer.alloc(512, 6)])).toBe(true);
    const map = await engine.cbtMapActive('a', 0, blocks);
    expect(map[5]).toBeGreaterThan(0);
    expect([...map].filter((n) => n !== 0)).toHaveLength(1);
  });

  it('refuses while the gate is frozen (a take in progress), writes again after', async () => {
    await dev.gate.freeze();
    expect(dev.writeNow(0, [Buffer.alloc(512, 8)])).toBe(false);
    dev.gate.unfreeze();
    expect(dev.writeNow(0, [Buffer.alloc(512, 8)])).toBe(true);
    expect((await dev.read(0, 512)).every((b) => b === 8)).toBe(true);
  });

  it('writev writes the pieces back to back and copies on write first, like write()', async () => {
    const image = engine.image(await takeSnapshot());
    await dev.writev(4096, [Buffer.alloc(1024, 1), Buffer.alloc(3072, 2), Buffer.alloc(4096, 3)]);
    const back = await dev.read(4096, 8192);
    expect(back.subarray(0, 1024).every((b) => b === 1)).toBe(true);
    expect(back.subarray(1024, 4096).every((b) => b === 2)).toBe(true);
    expect(back.subarray(4096).every((b) => b === 3)).toBe(true);
    expect((await image.read(4096, 8192)).every((b) => b === 0xaa)).toBe(true); // the content at take
    await expectErrno(dev.writev(MiB - 512, [Buffer.alloc(1024)]), 'EINVAL');
  });

  it('range errors throw EINVAL, as write() and read() do', async () => {
    await expectErrno(() => dev.writeNow(MiB, [Buffer.alloc(512)]), 'EINVAL');
    await expectErrno(() => dev.writeNow(100, [Buffer.alloc(512)]), 'EINVAL');
    await expectErrno(() => dev.readToNow(MiB - 512, 1024, Buffer.alloc(1024), 0), 'EINVAL');
  });
});

describe('EngineDevice.fileWriteTarget (a write made by another thread into the image file)', () => {
  it('gives the image file and position, holds the gate until end(), and marks the CBT only when written', async () => {
    const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'diff'), limitSectors: 1 << 16 });
    await engine.snapshotAdd(id, 'a'); // tracked, not taken
    const blocks = (await engine.cbtInfo('a')).blockCount;
    let asked = 0;
    const t = dev.fileWriteTarget(3 * 4096, 8192, () => asked++)!;
    expect(t.position).toBe(3 * 4096);
    fs.writeSync(t.fd, Buffer.alloc(8192, 5), 0, 8192, t.position);
    expect(dev.gate.inFlight).toBe(1);
    let frozen = false;
    const freezing = dev.gate.freeze().then(() => {
      frozen = true;
    });
    expect(asked).toBe(1);
    await new Promise((r) => setTimeout(r, 5));
    expect(frozen).toBe(false); // the write still counts as running
    t.end(true);
    t.end(true); // once only
    await freezing;
    dev.gate.unfreeze();
    expect((await dev.read(3 * 4096, 8192)).every((b) => b === 5)).toBe(true);
    const map = await engine.cbtMapActive('a', 0, blocks);
    expect([...map].map((n, i) => (n !== 0 ? i : -1)).filter((i) => i >= 0)).toEqual([3, 4]);
    // Not written: nothing marked, the gate left all the same.
    dev.fileWriteTarget(10 * 4096, 4096, () => {})!.end(false);
    expect(dev.gate.inFlight).toBe(0);
    expect((await engine.cbtMapActive('a', 0, blocks))[10]).toBe(0);
  });

  it('is null while the gate is frozen', async () => {
    await dev.gate.freeze();
    expect(dev.fileWriteTarget(0, 4096, () => {})).toBeNull();
    dev.gate.unfreeze();
    expect(dev.gate.inFlight).toBe(0);
  });

  it('hands out the copy-on-write of a chunk that still needs it: the image keeps the old data once the caller copied, then wrote', async () => {
    const image = engine.image(await takeSnapshot());
    const t = dev.fileWriteTarget(4096, 4096, () => {})!;
    expect(t.streamable).toBe(true); // a stream may follow: it copies on write too
    expect(t.copies).toHaveLength(1);
    const c = t.copies![0]!;
    expect(c).toMatchObject({ posIn: 4096, length: 4096 });
    // The caller's copy (a thread's copy_file_range), then its write.
    const old = Buffer.alloc(4096);
    fs.readSync(c.fdIn, old, 0, 4096, c.posIn);
    fs.writeSync(c.fdOut, old, 0, 4096, c.posOut);
    fs.writeSync(t.fd, Buffer.alloc(4096, 7), 0, 4096, t.position);
    t.end(true);
    expect(dev.gate.inFlight).toBe(0);
    expect((await image.read(4096, 4096)).every((b) => b === 0xaa)).toBe(true);
    expect((await dev.read(4096, 4096)).every((b) => b === 7)).toBe(true);
    // Stored: no copy is due any more.
    const again = dev.fileWriteTarget(4096, 4096, () => {})!;
    expect(again.copies).toBeUndefined();
    again.end(false);
  });

  it('a reader of the image that waits for a chunk asks the caller to give way; not copied, the chunk is copied the usual way later', async () => {
    const image = engine.image(await takeSnapshot());
    let asked = 0;
    const t = dev.fileWriteTarget(0, 4096, () => asked++)!;
    expect(t.copies).toHaveLength(1);
    let read: Buffer | null = null;
    const reading = image.read(0, 4096).then((b) => (read = b));
    await new Promise((r) => setTimeout(r, 5));
    expect(asked).toBe(1);
    expect(read).toBeNull(); // the chunk is the caller's until end()
    t.end(false, true); // a failed copy: nothing written
    await reading;
    expect(read!.every((b) => b === 0xaa)).toBe(true);
    await dev.write(0, Buffer.alloc(4096, 9)); // copied on write the usual way
    expect((await image.read(0, 4096)).every((b) => b === 0xaa)).toBe(true);
    expect((await dev.read(0, 4096)).every((b) => b === 9)).toBe(true);
  });

  it('checks the range', async () => {
    await expectErrno(() => dev.fileWriteTarget(MiB - 512, 1024, () => {}), 'EINVAL');
    expect(dev.gate.inFlight).toBe(0);
  });
});

describe('EngineDevice.fileWriteStream (a run of writes made by another thread into the image file)', () => {
  const CHUNK = 4096; // SMALL_PARAMS: chunks of 2^12 bytes
  const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
  /** What the stream's thread does before a write to chunk `nr` of its window: the in-kernel copy, made here with read and write. */
  function copyChunk(cow: NonNullable<ReturnType<EngineDevice['fileWriteStream']>>['cow'], nr: number): void {
    const k = nr - cow!.first;
    const old = Buffer.alloc(CHUNK);
    fs.readSync(cow!.fdIn, old, 0, CHUNK, nr * CHUNK);
    fs.writeSync(cow!.fdOut, old, 0, CHUNK, cow!.targets[k]!);
    Atomics.store(cow!.copied, k, 1);
  }

  it('without a snapshot: no copy-on-write to make, and the gate held until end()', async () => {
    const s = dev.fileWriteStream(() => {}, 0)!;
    expect(s.cow).toBeNull();
    expect(s.size).toBe(MiB);
    expect(dev.gate.inFlight).toBe(1);
    s.end();
    s.end(); // once only
    expect(dev.gate.inFlight).toBe(0);
  });

  it('with a snapshot held: hands out the chunks from `next` on; those copied keep their old data in the image, a reader of one asks the stream to give way', async () => {
    const image = engine.image(await takeSnapshot());
    let asked = 0;
    const s = dev.fileWriteStream(() => asked++, 3 * CHUNK + 100)!;
    const cow = s.cow!;
    expect(cow.first).toBe(4); // rounded up: the chunk of `next` is the first WRITE's
    expect(cow.chunkShift).toBe(12);
    expect(cow.count).toBeGreaterThanOrEqual(2);
    // The stream: chunk 4 copied, then written.
    copyChunk(cow, 4);
    fs.writeSync(s.fd, Buffer.alloc(CHUNK, 5), 0, CHUNK, s.base + 4 * CHUNK);
    // A reader of chunk 5 (the stream's, not copied) waits for it, and asks it to give way.
    let read: Buffer | null = null;
    const reading = image.read(5 * CHUNK, CHUNK).then((b) => (read = b));
    await pause(5);
    expect(asked).toBe(1);
    expect(read).toBeNull();
    s.end();
    await reading;
    expect(read!.every((b) => b === 0xaa)).toBe(true);
    expect(dev.gate.inFlight).toBe(0);
    expect((await image.read(4 * CHUNK, CHUNK)).every((b) => b === 0xaa)).toBe(true); // from the storage
    expect((await dev.read(4 * CHUNK, CHUNK)).every((b) => b === 5)).toBe(true);
    // Chunk 5 is still to copy: a write to it is copied on write the usual way.
    await dev.write(5 * CHUNK, Buffer.alloc(CHUNK, 6));
    expect((await image.read(0, MiB)).every((b) => b === 0xaa)).toBe(true);
    expect(dev.tracker!.diffArea!.stats().lockedChunks).toBe(0);
  });

  it('ends its window before a chunk someone else holds, and a second stream gets none of the first one\'s chunks', async () => {
    await takeSnapshot();
    const held = dev.fileWriteTarget(5 * CHUNK, CHUNK, () => {})!; // chunk 5 locked, its copy handed out
    expect(held.copies).toHaveLength(1);
    const s = dev.fileWriteStream(() => {}, 4 * CHUNK)!;
    expect(s.cow!.first).toBe(4);
    expect(s.cow!.count).toBe(1);
    const t = dev.fileWriteStream(() => {}, 4 * CHUNK)!;
    expect(t.cow!.count).toBe(0);
    t.end();
    s.end();
    held.end(false);
    expect(dev.tracker!.diffArea!.stats().lockedChunks).toBe(0);
    expect(dev.gate.inFlight).toBe(0);
  });

  it('a copy the stream failed (copied 2): no more copies are handed out, and writes are copied on write the usual way', async () => {
    const image = engine.image(await takeSnapshot());
    const s = dev.fileWriteStream(() => {}, 0)!;
    Atomics.store(s.cow!.copied, 0, 2);
    s.end();
    expect(dev.fileWriteStream(() => {}, 0)).toBeNull();
    expect(dev.fileWriteTarget(0, CHUNK, () => {})).toBeNull();
    await dev.write(0, Buffer.alloc(CHUNK, 7));
    expect((await image.read(0, CHUNK)).every((b) => b === 0xaa)).toBe(true);
    expect((await dev.read(0, CHUNK)).every((b) => b === 7)).toBe(true);
  });

  it('regions handed out and not used are given back: they do not fill a small storage', async () => {
    const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'diff'), limitSectors: 32 }); // 4 chunks
    await engine.snapshotAdd(id, 'a');
    await engine.snapshotTake(id);
    const image = engine.image((await engine.snapshotInfo('a')).image);
    const s = dev.fileWriteStream(() => {}, 0)!;
    expect(s.cow!.count).toBeGreaterThanOrEqual(2); // regions given now, for chunks 0, 1, ...
    s.end();
    expect(dev.tracker!.diffArea!.stats().regions).toBe(0);
    // Four other chunks copied on write: the storage holds exactly them.
    for (const nr of [100, 101, 102, 103]) await dev.write(nr * CHUNK, Buffer.alloc(CHUNK, 8));
    expect(dev.tracker!.diffArea!.corrupted).toBe(false);
    expect((await image.read(100 * CHUNK, 4 * CHUNK)).every((b) => b === 0xaa)).toBe(true);
  });
});
