/**
 * [root] The difference storage on a real 8 MiB file system, with a limit far
 * larger than the file system: writing past what fits reports ENOSPC (-28) in
 * snapshotinfo and the corrupted event (after a no_space event), never EIO, and
 * storage_info shows the space the file really holds (its blocks, as stat says).
 * tmpfs reserves space with fallocate; ext2 cannot, so there the storage grows
 * sparse and the failure comes from the write.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SnapshotEvent } from '../../../engine/abi/types.js';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import { canUseLoop, hasCommand, isRoot } from '../../helpers/env.js';
import { makeImage, tempDir } from './helpers.js';

const MiB = 1 << 20;
const FS_MIB = 8;
const DEVICE_MIB = 24;

let dir = '';
let mountPoint = '';
let engine: EmbeddedEngine | null = null;

afterEach(async () => {
  await engine?.close();
  engine = null;
  if (mountPoint !== '') execFileSync('umount', [mountPoint]);
  mountPoint = '';
  if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  dir = '';
});

function mount(args: string[]): string {
  const at = path.join(dir, 'mnt');
  fs.mkdirSync(at);
  execFileSync('mount', [...args, at]);
  mountPoint = at;
  return at;
}

/** Writes the whole device (1 MiB at a time) with a pattern; returns what was written. */
async function fillDevice(e: EmbeddedEngine): Promise<Buffer> {
  const all = Buffer.alloc(DEVICE_MIB * MiB);
  for (let i = 0; i < DEVICE_MIB; i++) {
    const data = Buffer.alloc(MiB, 0x40 + i);
    data.copy(all, i * MiB);
    await e.device('a').write(i * MiB, data);
  }
  return all;
}

async function eventsUntilCorrupted(e: EmbeddedEngine, id: string): Promise<SnapshotEvent[]> {
  const out: SnapshotEvent[] = [];
  const deadline = Date.now() + 10_000;
  while (!out.some((x) => x.code === 'corrupted') && Date.now() < deadline) {
    const ev = await e.snapshotWaitEvent(id, 200);
    if (ev) out.push(ev);
  }
  return out;
}

async function overflowOnto(fsDir: string): Promise<void> {
  // 1 MiB portions and 64 KiB chunks; a limit of 1 GiB that the file system cannot hold
  const e = createEmbeddedEngine({ params: { diffStorageMinimum: 2048, chunkMinimumShift: 16 } });
  engine = e;
  await e.addDevice({ path: makeImage(dir, 'a.img', DEVICE_MIB * MiB, 0xaa), name: 'a' });
  const storage = path.join(fsDir, 'diff');
  const id = await e.snapshotCreate({ diffStoragePath: storage, limitSectors: 2 * 1024 * 1024 });
  await e.snapshotAdd(id, 'a');
  await e.snapshotTake(id);
  const img = e.image((await e.snapshotInfo('a')).image);
  const written = await fillDevice(e);

  const evs = await eventsUntilCorrupted(e, id);
  const codes = evs.map((x) => x.code).filter((c) => c !== 'low_free_space');
  expect(codes).toEqual(['no_space', 'corrupted']);
  expect(evs.find((x) => x.code === 'corrupted')).toMatchObject({ device: 'a', errCode: -28 });
  expect(await e.snapshotInfo('a')).toEqual({ errorCode: -28, image: img.name });
  await expect(img.read(0, 4096)).rejects.toThrow(/EIO.*corrupted \(error -28: the difference storage is full\)/);

  // storage_info: the space the file holds, as stat tells it; never more than the file system
  const info = await e.storageInfo(id);
  const st = fs.statSync(storage);
  expect(info.allocatedSectors).toBe(Math.min(st.blocks, st.size / 512));
  expect(info.allocatedSectors).toBeGreaterThan(0);
  expect(info.allocatedSectors * 512).toBeLessThanOrEqual(FS_MIB * MiB);
  expect(info.usedSectors).toBeGreaterThan(0);
  expect(info.usedSectors!).toBeLessThanOrEqual(st.size / 512);
  expect(info.limitSectors).toBe(2 * 1024 * 1024);

  // the original has every write
  expect((await e.device('a').read(0, DEVICE_MIB * MiB)).equals(written)).toBe(true);
}

describe('difference storage on a full file system', () => {
  it.skipIf(!isRoot)(`[root] tmpfs of ${FS_MIB} MiB (fallocate): reservation fails with ENOSPC -> no_space, corrupted -28, true figures`, async () => {
    dir = tempDir('fsfull');
    const at = mount(['-t', 'tmpfs', '-o', `size=${FS_MIB}m`, 'tmpfs']);
    await overflowOnto(at);
    // every byte reserved is the file's: tmpfs reserved whole 1 MiB portions up to its size
    const info = await engine!.storageInfo((await engine!.snapshotCollect())[0]!);
    expect(info.allocatedSectors % 2048).toBe(0);
    expect(info.allocatedSectors * 512).toBeGreaterThanOrEqual((FS_MIB - 1) * MiB);
  });

  it.skipIf(!canUseLoop || !hasCommand('mkfs.ext2'))(
    `[root, loop] ext2 of ${FS_MIB} MiB (no fallocate): the sparse storage's write fails with ENOSPC -> no_space, corrupted -28`,
    async () => {
      dir = tempDir('fsfull');
      const image = path.join(dir, 'ext2.img');
      fs.writeFileSync(image, Buffer.alloc(0));
      fs.truncateSync(image, FS_MIB * MiB);
      execFileSync('mkfs.ext2', ['-q', '-F', '-m', '0', image]);
      const at = mount(['-o', 'loop', image]);
      await overflowOnto(at);
      const st = fs.statSync(path.join(at, 'diff'));
      // sparse: the file's size runs ahead of the blocks it could get
      expect(st.size).toBeGreaterThan(st.blocks * 512);
    },
  );
});
