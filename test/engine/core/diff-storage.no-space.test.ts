/**
 * A difference storage whose file system fills up reports ENOSPC (-28), never EIO:
 * the storage file's space layer is replaced by one that runs out (as a full file
 * system would), both where space is reserved (fallocate) and, on file systems
 * that cannot reserve, where the data is written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SnapshotEvent } from '../../../engine/abi/types.js';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import { REAL_STORAGE_FILE_OPS } from '../../../engine/core/diff-storage.js';
import type { StorageFileOps } from '../../../engine/core/diff-storage.js';
import { writevFull } from '../../../engine/core/file-io.js';
import { expectErrno, makeImage, SMALL_PARAMS, tempDir } from './helpers.js';

const MiB = 1 << 20;
const CHUNK = 4096; // 8 sectors with SMALL_PARAMS; portions of 16 sectors

const nodeError = (code: string): Error => Object.assign(new Error(`simulated ${code}`), { code });

/** A file system with room for `bytes` of reservations; `reserve` calls are counted. */
function fsWithRoom(bytes: number): StorageFileOps & { reserved: number } {
  const ops = {
    reserved: 0,
    reserve: async (fd: number, offset: number, length: number): Promise<void> => {
      if (ops.reserved + length > bytes) throw nodeError('ENOSPC');
      await REAL_STORAGE_FILE_OPS.reserve(fd, offset, length);
      ops.reserved += length;
    },
    writev: writevFull,
  };
  return ops;
}

/** A file system that cannot reserve space and whose writes fail with `code` after `okWrites` writes. */
function sparseFs(okWrites: number, code: string): StorageFileOps {
  let writes = 0;
  return {
    reserve: async () => {
      throw nodeError('EOPNOTSUPP');
    },
    writev: async (fd, bufs, pos) => {
      if (writes++ >= okWrites) throw nodeError(code);
      await writevFull(fd, bufs, pos);
    },
  };
}

let dir = '';
let engine: EmbeddedEngine | null = null;

afterEach(async () => {
  await engine?.close();
  engine = null;
  fs.rmSync(dir, { recursive: true, force: true });
});

async function setUp(storageFile: StorageFileOps): Promise<EmbeddedEngine> {
  dir = tempDir('nospace');
  engine = createEmbeddedEngine({ params: SMALL_PARAMS, storageFile });
  await engine.addDevice({ path: makeImage(dir, 'a.img', MiB, 0xaa), name: 'a' });
  return engine;
}

async function eventsUntilCorrupted(e: EmbeddedEngine, id: string): Promise<SnapshotEvent[]> {
  const out: SnapshotEvent[] = [];
  const deadline = Date.now() + 5000;
  while (!out.some((x) => x.code === 'corrupted') && Date.now() < deadline) {
    const ev = await e.snapshotWaitEvent(id, 100);
    if (ev) out.push(ev);
  }
  return out;
}

describe('difference storage on a file system that fills up', () => {
  it('overflows with no_space and corrupted -28 (ENOSPC) where the next portion cannot be reserved; storage_info shows the space reserved', async () => {
    const e = await setUp(fsWithRoom(24 * 512)); // room for 24 sectors: portion 1 (16) fits, portion 2 does not
    const storage = path.join(dir, 'diff');
    const id = await e.snapshotCreate({ diffStoragePath: storage, limitSectors: 1 << 20 });
    await e.snapshotAdd(id, 'a');
    await e.snapshotTake(id);
    const img = e.image((await e.snapshotInfo('a')).image);
    // three chunks: two fit in the 16 reserved sectors, the third needs the portion that cannot be reserved
    for (let i = 0; i < 3; i++) await e.device('a').write(i * CHUNK, Buffer.alloc(CHUNK, 0x30 + i));
    const evs = await eventsUntilCorrupted(e, id);
    // chunk 1 leaves half a portion: low_free_space, portion 2 requested (its reservation fails)
    expect(evs.map((x) => x.code)).toEqual(['low_free_space', 'no_space', 'corrupted']);
    expect(evs[1]).toMatchObject({ code: 'no_space', requestedSectors: 8 });
    expect(evs[2]).toMatchObject({ code: 'corrupted', device: 'a', errCode: -28 });
    expect((await e.snapshotInfo('a')).errorCode).toBe(-28);
    // the true figures: 16 sectors reserved (not the 32 requested), 16 used
    expect(await e.storageInfo(id)).toMatchObject({ limitSectors: 1 << 20, allocatedSectors: 16, usedSectors: 16 });
    const st = fs.statSync(storage);
    expect(st.size).toBe(16 * 512);
    expect(st.blocks).toBeGreaterThanOrEqual(16);
    await expect(img.read(0, 512)).rejects.toThrow(/EIO.*difference storage is full/);
    // the original keeps every write
    expect((await e.device('a').read(2 * CHUNK, CHUNK)).every((x) => x === 0x32)).toBe(true);
  });

  it('refuses to create a storage whose first portion the file system cannot hold (ENOSPC), leaving no file', async () => {
    const e = await setUp(fsWithRoom(8 * 512));
    const storage = path.join(dir, 'diff');
    await expect(e.snapshotCreate({ diffStoragePath: storage, limitSectors: 1000 })).rejects.toThrow(
      /ENOSPC.*file system holding the difference storage .*diff is full/,
    );
    await expectErrno(e.snapshotCreate({ diffStoragePath: storage, limitSectors: 1000 }), 'ENOSPC');
    expect(fs.existsSync(storage)).toBe(false);
    expect(await e.snapshotCollect()).toEqual([]);
  });

  it('without fallocate the file grows sparse, and a write failing with ENOSPC overflows the storage with -28, not -5', async () => {
    const e = await setUp(sparseFs(1, 'ENOSPC'));
    const storage = path.join(dir, 'diff');
    const id = await e.snapshotCreate({ diffStoragePath: storage, limitSectors: 1 << 20 });
    await e.snapshotAdd(id, 'a');
    await e.snapshotTake(id);
    expect(fs.statSync(storage).size).toBe(16 * 512); // grown with ftruncate
    // the sparse file holds no block yet: storage_info says so
    expect((await e.storageInfo(id)).allocatedSectors).toBe(0);
    await e.device('a').write(0, Buffer.alloc(CHUNK, 1)); // stored
    await e.device('a').write(CHUNK, Buffer.alloc(CHUNK, 2)); // the file system is full
    const evs = await eventsUntilCorrupted(e, id);
    expect(evs.filter((x) => x.code !== 'low_free_space').map((x) => x.code)).toEqual(['no_space', 'corrupted']);
    expect(evs.find((x) => x.code === 'corrupted')).toMatchObject({ errCode: -28 });
    expect((await e.snapshotInfo('a')).errorCode).toBe(-28);
    expect((await e.storageInfo(id)).allocatedSectors).toBe(8); // the one chunk written
  });

  it('an image write into a stored chunk that fails with ENOSPC fails with ENOSPC and corrupts the image with -28', async () => {
    const e = await setUp(sparseFs(1, 'ENOSPC'));
    const id = await e.snapshotCreate({ diffStoragePath: path.join(dir, 'diff'), limitSectors: 1 << 20 });
    await e.snapshotAdd(id, 'a');
    await e.snapshotTake(id);
    await e.device('a').write(0, Buffer.alloc(CHUNK, 1)); // chunk 0 stored (the one write that succeeds)
    const img = e.image((await e.snapshotInfo('a')).image);
    expect((await img.read(0, CHUNK)).every((x) => x === 0xaa)).toBe(true);
    await expectErrno(img.write(512, Buffer.alloc(512, 7)), 'ENOSPC');
    const evs = await eventsUntilCorrupted(e, id);
    expect(evs.filter((x) => x.code !== 'low_free_space').map((x) => x.code)).toEqual(['no_space', 'corrupted']);
    expect((await e.snapshotInfo('a')).errorCode).toBe(-28);
    await expect(img.read(0, 512)).rejects.toThrow(/^EIO: .*error -28: the difference storage is full/);
  });

  it('chunks wait for a portion whose reservation is still running, then are stored in it', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const e = await setUp({
      reserve: async (fd, offset, length) => {
        if (++calls === 2) await gate; // the second portion takes its time
        await REAL_STORAGE_FILE_OPS.reserve(fd, offset, length);
      },
      writev: writevFull,
    });
    // a limit of 4 chunks: two portions, the second one reserved late
    const id = await e.snapshotCreate({ diffStoragePath: path.join(dir, 'diff'), limitSectors: 32 });
    await e.snapshotAdd(id, 'a');
    await e.snapshotTake(id);
    const img = e.image((await e.snapshotInfo('a')).image);
    const writes = Promise.all([0, 1, 2, 3].map((i) => e.device('a').write(i * CHUNK, Buffer.alloc(CHUNK, 0x10 + i))));
    await writes;
    await new Promise((r) => setTimeout(r, 20));
    // chunks 0 and 1 fill the first portion; chunk 2 waits for the second
    expect(calls).toBe(2);
    expect((await e.snapshotInfo('a')).errorCode).toBe(0);
    release();
    await expect.poll(async () => (await e.storageInfo(id)).usedSectors).toBe(32);
    expect((await e.storageInfo(id)).allocatedSectors).toBe(32);
    expect((await e.snapshotInfo('a')).errorCode).toBe(0);
    for (let i = 0; i < 4; i++) expect((await img.read(i * CHUNK, CHUNK)).every((x) => x === 0xaa)).toBe(true);
  });

  it('a write failing for another reason (EIO) still reports -5', async () => {
    const e = await setUp(sparseFs(0, 'EIO'));
    const id = await e.snapshotCreate({ diffStoragePath: path.join(dir, 'diff'), limitSectors: 1 << 20 });
    await e.snapshotAdd(id, 'a');
    await e.snapshotTake(id);
    await e.device('a').write(0, Buffer.alloc(CHUNK, 1));
    const evs = await eventsUntilCorrupted(e, id);
    expect(evs.filter((x) => x.code !== 'low_free_space')).toEqual([expect.objectContaining({ code: 'corrupted', errCode: -5 })]);
  });
});
