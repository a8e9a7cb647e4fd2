/**
 * Difference storage: growth by portions, the low-space event, and overflow
 * (no_space + corrupted events, -ENOSPC in snapshotinfo, EIO from the image,
 * originals intact and writable).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SnapshotEvent } from '../../../engine/abi/types.js';
import { createEmbeddedEngine, FILE_DEVICE_MAJOR } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import { expectErrno, makeImage, SMALL_PARAMS, tempDir } from './helpers.js';

const MiB = 1 << 20;
const CHUNK = 4096; // 8 sectors with SMALL_PARAMS

let dir: string;
let engine: EmbeddedEngine;

beforeEach(async () => {
  dir = tempDir('storage');
  engine = createEmbeddedEngine({ params: SMALL_PARAMS }); // 16-sector portions, store at once
  await engine.addDevice({ path: makeImage(dir, 'a.img', MiB, 0xaa), name: 'a' });
  await engine.addDevice({ path: makeImage(dir, 'b.img', MiB, 0xbb), name: 'b' });
});

afterEach(async () => {
  await engine.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function events(id: string, until: (evs: SnapshotEvent[]) => boolean): Promise<SnapshotEvent[]> {
  const out: SnapshotEvent[] = [];
  const deadline = Date.now() + 5000;
  while (!until(out) && Date.now() < deadline) {
    const ev = await engine.snapshotWaitEvent(id, 100);
    if (ev) out.push(ev);
  }
  return out;
}

describe('difference storage', () => {
  it('grows by diff_storage_minimum portions up to the limit, with low_free_space events', async () => {
    const storage = path.join(dir, 'diff');
    const id = await engine.snapshotCreate({ diffStoragePath: storage, limitSectors: 40 });
    await engine.snapshotAdd(id, 'a');
    await engine.snapshotTake(id);
    expect(await engine.storageInfo(id)).toMatchObject({ limitSectors: 40, allocatedSectors: 16, usedSectors: 0 });
    const t0 = Date.now();
    // First chunk: 8 of 16 sectors used, 8 left = half a portion -> low space, grow to 32.
    await engine.device('a').write(0, Buffer.alloc(512, 1));
    const [low] = await events(id, (e) => e.length >= 1);
    expect(low).toMatchObject({ code: 'low_free_space', snapshotId: id, requestedSectors: 16 });
    expect(low!.timeMs).toBeGreaterThanOrEqual(t0);
    expect(low!.timeMs).toBeLessThanOrEqual(Date.now());
    expect(await engine.storageInfo(id)).toMatchObject({ allocatedSectors: 32, usedSectors: 8 });
    expect(fs.statSync(storage).size).toBe(32 * 512);
    // Second chunk: 16 of 32 used, 16 left: no event. Third: 24 used, 8 left -> grow to 40 (the limit).
    await engine.device('a').write(CHUNK, Buffer.alloc(512, 1));
    await engine.device('a').write(2 * CHUNK, Buffer.alloc(512, 1));
    const evs = await events(id, (e) => e.length >= 1);
    expect(evs.map((e) => e.code)).toEqual(['low_free_space']);
    const st = await engine.storageInfo(id);
    expect(st).toMatchObject({ allocatedSectors: 40, usedSectors: 24 });
    expect(await engine.snapshotWaitEvent(id, 20)).toBeNull();
    expect((await engine.snapshotInfo('a')).errorCode).toBe(0);
  });

  it('overflow: corrupted + no_space events, -ENOSPC, EIO from the image, originals intact and writable', async () => {
    const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'diff'), limitSectors: 24 }); // 3 chunks
    await engine.snapshotAdd(id, 'a');
    await engine.snapshotAdd(id, 'b');
    await engine.snapshotTake(id);
    const imgA = engine.image((await engine.snapshotInfo('a')).image);
    const imgB = engine.image((await engine.snapshotInfo('b')).image);
    // b: one chunk copied while there is room.
    await engine.device('b').write(0, Buffer.alloc(CHUNK, 0x0b));
    // a: five chunks; the storage holds two more, the third does not fit.
    const written: Buffer[] = [];
    for (let i = 0; i < 5; i++) {
      const data = Buffer.alloc(CHUNK, 0x40 + i);
      written.push(data);
      await engine.device('a').write(i * CHUNK, data);
    }
    const evs = await events(id, (e) => e.some((x) => x.code === 'corrupted'));
    const noSpace = evs.find((e) => e.code === 'no_space');
    const corrupted = evs.find((e) => e.code === 'corrupted');
    expect(noSpace).toMatchObject({ code: 'no_space', snapshotId: id, requestedSectors: 8 });
    const devA = engine.listDevices().find((d) => d.name === 'a')!;
    expect(corrupted).toEqual({
      code: 'corrupted',
      snapshotId: id,
      timeMs: corrupted!.timeMs,
      device: 'a',
      devMajor: FILE_DEVICE_MAJOR,
      devMinor: devA.devMinor,
      errCode: -28,
    });
    expect(await engine.snapshotInfo('a')).toEqual({ errorCode: -28, image: imgA.name });
    await expectErrno(imgA.read(0, 512), 'EIO');
    await expectErrno(imgA.read(10 * CHUNK, 512), 'EIO');
    await expectErrno(imgA.write(0, Buffer.alloc(512)), 'EIO');
    // The originals have every write, and keep accepting writes.
    for (let i = 0; i < 5; i++) expect((await engine.device('a').read(i * CHUNK, CHUNK)).equals(written[i]!)).toBe(true);
    await engine.device('a').write(100 * CHUNK, Buffer.alloc(CHUNK, 0x77));
    expect((await engine.device('a').read(100 * CHUNK, CHUNK)).every((x) => x === 0x77)).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'a.img')).subarray(0, CHUNK).equals(written[0]!)).toBe(true);
    // b's chunk was stored before the overflow: its image is still whole until it needs a new chunk.
    expect((await engine.snapshotInfo('b')).errorCode).toBe(0);
    expect((await imgB.read(0, CHUNK)).every((x) => x === 0xbb)).toBe(true);
    await engine.device('b').write(5 * CHUNK, Buffer.alloc(512, 1));
    await events(id, (e) => e.some((x) => x.code === 'corrupted'));
    expect((await engine.snapshotInfo('b')).errorCode).toBe(-28);
    await expectErrno(imgB.read(0, 512), 'EIO');
    expect((await engine.device('b').read(5 * CHUNK, 512)).every((x) => x === 1)).toBe(true);
    expect((await engine.storageInfo(id)).usedSectors).toBe(24);
    // Destroy clears the error: the next snapshot of the device starts clean.
    await engine.snapshotDestroy(id);
    expect(await engine.snapshotInfo('a')).toEqual({ errorCode: 0, image: '' });
    const id2 = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'diff2'), limitSectors: 1000 });
    await engine.snapshotAdd(id2, 'a');
    await engine.snapshotTake(id2);
    expect((await engine.image((await engine.snapshotInfo('a')).image).read(0, CHUNK)).equals(written[0]!)).toBe(true);
  });

  it('a zero limit overflows at the first copy-on-write', async () => {
    const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'diff'), limitSectors: 0 });
    await engine.snapshotAdd(id, 'a');
    await engine.snapshotTake(id);
    expect((await engine.storageInfo(id)).allocatedSectors).toBe(0);
    await engine.device('a').write(0, Buffer.alloc(512, 1));
    const evs = await events(id, (e) => e.some((x) => x.code === 'corrupted'));
    expect(evs.map((e) => e.code)).toEqual(['no_space', 'corrupted']);
    expect((await engine.snapshotInfo('a')).errorCode).toBe(-28);
  });
});

describe('difference storage file removal', () => {
  it('never removes a file that replaced the storage file at its path', async () => {
    const storage = path.join(dir, 'diff');
    const id = await engine.snapshotCreate({ diffStoragePath: storage, limitSectors: 100 });
    fs.renameSync(storage, path.join(dir, 'moved'));
    fs.writeFileSync(storage, 'someone else');
    await engine.snapshotDestroy(id);
    expect(fs.readFileSync(storage, 'utf8')).toBe('someone else');
  });
});
