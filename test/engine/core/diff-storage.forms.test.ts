/**
 * The embedded engine's difference storage in the forms a caller's descriptor can
 * have (diffStorageFd): an existing regular file starts at its size and is only
 * ever extended (never truncated, never removed), is refused when it already holds
 * more than the limit while nearly empty by the module's rule, and is filled from
 * its start; an unnamed file grows like a new one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import { makeImage, SMALL_PARAMS, tempDir } from './helpers.js';

const MiB = 1 << 20;
const O_TMPFILE = 0o20200000; // x86_64 (with O_DIRECTORY)

let dir: string;
let engine: EmbeddedEngine;

beforeEach(async () => {
  dir = tempDir('forms');
  engine = createEmbeddedEngine({ params: SMALL_PARAMS }); // 16-sector portions, 4 KiB chunks stored at once
  await engine.addDevice({ path: makeImage(dir, 'a.img', MiB, 0xaa), name: 'a' });
});

afterEach(async () => {
  await engine.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function prepared(name: string, bytes: number, fill: number): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, Buffer.alloc(bytes, fill));
  return p;
}

describe('difference storage forms (embedded engine)', () => {
  it('an existing file: its size is the capacity, no growth at create, chunks written from its start, kept at destroy', async () => {
    const file = prepared('store.img', 64 * 1024, 0x3c); // 128 sectors: more than half a 16-sector portion
    const id = await engine.snapshotCreate({ diffStoragePath: file, limitSectors: 1024, diffStorageFd: fs.openSync(file, 'r+') });
    expect(fs.statSync(file).size).toBe(64 * 1024);
    await engine.snapshotAdd(id, 'a');
    await engine.snapshotTake(id);
    await engine.device('a').write(0, Buffer.alloc(4096, 0x11)); // one chunk copied
    const info = await engine.storageInfo(id);
    expect(info.allocatedSectors).toBe(128);
    await engine.snapshotDestroy(id);
    const after = fs.readFileSync(file);
    expect(after.length).toBe(64 * 1024);
    expect(after.subarray(0, 4096).every((b) => b === 0xaa)).toBe(true); // the take's data of the chunk
    expect(after.subarray(4096).every((b) => b === 0x3c)).toBe(true);
  });

  it('a nearly empty existing file grows from its size by one portion, never below it', async () => {
    const file = prepared('small.img', 1024, 0x3c); // 2 sectors: at most half a portion
    const id = await engine.snapshotCreate({ diffStoragePath: file, limitSectors: 1024, diffStorageFd: fs.openSync(file, 'r+') });
    expect(fs.statSync(file).size).toBe((2 + 16) * 512);
    expect(fs.readFileSync(file).subarray(0, 1024).every((b) => b === 0x3c)).toBe(true);
    await engine.snapshotDestroy(id);
    expect(fs.existsSync(file)).toBe(true);
  });

  it('an existing file already larger than the limit while nearly empty by the rule is refused with ENOSPC, untouched', async () => {
    const small = createEmbeddedEngine({ params: { ...SMALL_PARAMS, diffStorageMinimum: 4096 } }); // half a portion: 1 MiB
    try {
      const file = prepared('big.img', 512 * 1024, 0x3c); // 1024 sectors > limit 512
      await expect(small.snapshotCreate({ diffStoragePath: file, limitSectors: 512, diffStorageFd: fs.openSync(file, 'r+') })).rejects.toThrow(
        /already holds 512 KiB, more than the limit of 256 KiB: give a limit of at least its size/,
      );
      expect(fs.readFileSync(file).equals(Buffer.alloc(512 * 1024, 0x3c))).toBe(true);
    } finally {
      await small.close();
    }
  });

  it.skipIf(process.arch !== 'x64')('[x86_64] an unnamed O_TMPFILE file grows like a new one and leaves nothing', async () => {
    const place = path.join(dir, 'place');
    fs.mkdirSync(place);
    const fd = fs.openSync(place, fs.constants.O_RDWR | O_TMPFILE, 0o600);
    const id = await engine.snapshotCreate({ diffStoragePath: place, limitSectors: 1024, diffStorageFd: fd });
    expect((await engine.storageInfo(id)).allocatedSectors).toBe(16);
    await engine.snapshotDestroy(id);
    expect(fs.readdirSync(place)).toEqual([]);
  });
});
