/** Growing a held snapshot's difference storage (the append_storage counterpart). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import { expectErrno, makeImage, SMALL_PARAMS, tempDir } from './helpers.js';

const MiB = 1 << 20;
const CHUNK = 4096; // 8 sectors with SMALL_PARAMS

let dir: string;
let engine: EmbeddedEngine;

beforeEach(async () => {
  dir = tempDir('grow');
  engine = createEmbeddedEngine({ params: SMALL_PARAMS });
  await engine.addDevice({ path: makeImage(dir, 'a.img', MiB, 0xaa), name: 'a' });
});

afterEach(async () => {
  await engine.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function heldSnapshot(limitSectors: number): Promise<string> {
  const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'diff'), limitSectors });
  await engine.snapshotAdd(id, 'a');
  await engine.snapshotTake(id);
  return id;
}

describe('difference storage grow', () => {
  it('a storage filled to its limit takes more chunks once grown, and the image stays whole', async () => {
    const id = await heldSnapshot(24); // 3 chunks
    for (let i = 0; i < 3; i++) await engine.device('a').write(i * CHUNK, Buffer.alloc(CHUNK, 0x10 + i));
    expect(await engine.storageInfo(id)).toMatchObject({ limitSectors: 24, usedSectors: 24 });
    await engine.storageGrow(id, 16);
    expect((await engine.storageInfo(id)).limitSectors).toBe(40);
    // Two more chunks: without the grow the fourth would overflow the snapshot.
    for (let i = 3; i < 5; i++) await engine.device('a').write(i * CHUNK, Buffer.alloc(CHUNK, 0x10 + i));
    expect(await engine.storageInfo(id)).toMatchObject({ limitSectors: 40, usedSectors: 40, allocatedSectors: 40 });
    expect((await engine.snapshotInfo('a')).errorCode).toBe(0);
    const image = engine.image((await engine.snapshotInfo('a')).image);
    expect((await image.read(0, 5 * CHUNK)).every((x) => x === 0xaa)).toBe(true);
    // The sixth chunk is beyond the grown limit: the snapshot fails as before.
    await engine.device('a').write(5 * CHUNK, Buffer.alloc(CHUNK, 1));
    expect((await engine.snapshotInfo('a')).errorCode).toBe(-28);
  });

  it('refuses a count that is not a positive integer, an unknown snapshot, and an overflowed storage', async () => {
    const id = await heldSnapshot(8);
    await expectErrno(engine.storageGrow(id, 0), 'EINVAL');
    await expectErrno(engine.storageGrow(id, 1.5), 'EINVAL');
    await expectErrno(engine.storageGrow('00000000-0000-4000-8000-000000000000', 8), 'ESRCH');
    await engine.device('a').write(0, Buffer.alloc(CHUNK, 1));
    await engine.device('a').write(CHUNK, Buffer.alloc(CHUNK, 1)); // overflows
    expect((await engine.snapshotInfo('a')).errorCode).toBe(-28);
    await expectErrno(engine.storageGrow(id, 8), 'ENOSPC');
    expect((await engine.storageInfo(id)).limitSectors).toBe(8);
  });
});
