import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import { engineExports } from '../../../engine/nbd/engine-exports.js';

let dir: string;
let engine: EmbeddedEngine;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-engine-exports-'));
  engine = createEmbeddedEngine();
  const path = join(dir, 'disk1.img');
  await writeFile(path, '');
  await truncate(path, 4 * 1024 * 1024);
  await engine.addDevice({ path, name: 'disk1' });
});

afterEach(async () => {
  await engine.close();
  await rm(dir, { recursive: true, force: true });
});

async function take(): Promise<string> {
  const id = await engine.snapshotCreate({ diffStoragePath: join(dir, 'diff'), limitSectors: 65536 });
  await engine.snapshotAdd(id, 'disk1');
  await engine.snapshotTake(id);
  return id;
}

describe('engineExports', () => {
  it('lists devices, then images as they are taken and destroyed', async () => {
    const source = engineExports(engine);
    expect(source.list().map((e) => e.name)).toEqual(['disk1']);
    expect(source.open('blksnap-image0')).toBeUndefined();
    expect(source.open('nope')).toBeUndefined();
    const id = await take();
    const entries = source.list();
    expect(entries.map((e) => e.name)).toEqual(['disk1', 'blksnap-image0']);
    expect(entries[1]?.description).toContain(id);
    expect(source.open('blksnap-image0')?.capacity).toBe(4 * 1024 * 1024);
    await engine.snapshotDestroy(id);
    expect(source.list().map((e) => e.name)).toEqual(['disk1']);
    expect(source.open('blksnap-image0')).toBeUndefined();
  });

  it('exports devices writable and images read-only unless writableImages is set', async () => {
    await take();
    const device = engineExports(engine).open('disk1');
    expect(device?.readOnly).toBe(false);
    await device?.write(0, Buffer.alloc(512, 7));

    const image = engineExports(engine).open('blksnap-image0');
    expect(image?.readOnly).toBe(true);
    await expect(image?.write(0, Buffer.alloc(512))).rejects.toMatchObject({ errno: 'EROFS' });
    await expect(image?.writeZeroes(0, 512)).rejects.toMatchObject({ errno: 'EROFS' });
    await expect(image?.discard(0, 512)).rejects.toMatchObject({ errno: 'EROFS' });
    expect((await image?.read(0, 512))?.every((b) => b === 0)).toBe(true); // content at take

    const writable = engineExports(engine, { writableImages: true }).open('blksnap-image0');
    expect(writable?.readOnly).toBe(false);
    await writable?.write(0, Buffer.alloc(512, 9));
    expect((await writable?.read(0, 512))?.every((b) => b === 9)).toBe(true);
  });

  it('asks writableImages per snapshot at each open', async () => {
    const id = await take();
    const writable = new Set<string>();
    const source = engineExports(engine, { writableImages: (snapshotId) => writable.has(snapshotId) });
    expect(source.open('blksnap-image0')?.readOnly).toBe(true);
    writable.add(id);
    const image = source.open('blksnap-image0');
    expect(image?.readOnly).toBe(false);
    await image?.write(0, Buffer.alloc(512, 5));
    expect((await image?.read(0, 512))?.every((b) => b === 5)).toBe(true);
    expect(source.open('disk1')?.readOnly).toBe(false);
  });
});
