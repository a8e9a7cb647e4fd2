/**
 * Structured replies and block status with real clients: nbdinfo --map (holes of
 * engine devices and snapshot images, the CBT contexts), qemu-img map against the
 * image file's own allocation, nbdinfo's capability probes, and qemu-img convert
 * / nbdcopy of a sparse export. The server and the engine live in this process;
 * the tools run asynchronously.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import { engineExports } from '../../../engine/nbd/engine-exports.js';
import { NbdServer } from '../../../engine/nbd/server.js';
import { hasCommand } from '../../helpers/env.js';

const run = promisify(execFile);
const KiB = 1024;
const MiB = 1024 * KiB;
/** The engine's default CBT tracking block (trackingBlockMinimumShift 16) for a small disk. */
const CBT_BLOCK = 64 * KiB;

let dir: string;
let engine: EmbeddedEngine;
let server: NbdServer;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-status-test-'));
  // 64 KiB chunks, so a copied-on-write chunk is a known 64 KiB run.
  engine = createEmbeddedEngine({ params: { chunkMinimumShift: 16, chunkMaximumShift: 16, diffStorageMinimum: 16384 } });
  server = new NbdServer({ exports: engineExports(engine), unixSocket: join(dir, 'nbd.sock') });
  await server.start();
});

afterEach(async () => {
  await server.close();
  await engine.close();
  await rm(dir, { recursive: true, force: true });
});

/** A sparse image file of `size` with data written at the given [offset, length) runs, added as an engine device. */
async function sparseDisk(name: string, size: number, runs: [number, number][]): Promise<string> {
  const path = join(dir, `${name}.img`);
  await writeFile(path, '');
  await truncate(path, size);
  const fh = await open(path, 'r+');
  for (const [offset, length] of runs) await fh.write(randomBytes(length), 0, length, offset);
  await fh.close();
  await engine.addDevice({ path, name });
  return path;
}

/** Creates a snapshot of `device` (which attaches its tracker), runs `beforeTake`, takes it; returns the image's export name. */
async function takeSnapshot(device: string, beforeTake: () => Promise<void> = async () => {}): Promise<string> {
  const id = await engine.snapshotCreate({ diffStoragePath: join(dir, `diff-${device}.storage`), limitSectors: (64 * MiB) / 512 });
  await engine.snapshotAdd(id, device);
  await beforeTake();
  await engine.snapshotTake(id);
  const image = engine.listImages().find((i) => i.device === device && i.snapshotId === id);
  if (image === undefined) throw new Error('no image after snapshotTake');
  return image.name;
}

interface MapEntry {
  offset: number;
  length: number;
  type: number;
}

async function nbdinfoMap(uri: string, context?: string): Promise<MapEntry[]> {
  const args = ['--json', context === undefined ? '--map' : `--map=${context}`, uri];
  const { stdout } = await run('nbdinfo', args);
  return (JSON.parse(stdout) as MapEntry[]).map(({ offset, length, type }) => ({ offset, length, type }));
}

/** The runs of `type` in a map, as [offset, length]. */
const runsOf = (map: MapEntry[], type: number): [number, number][] => map.filter((e) => e.type === type).map((e) => [e.offset, e.length]);

describe('NBD block status and structured replies', () => {
  it.skipIf(!hasCommand('nbdinfo'))('[nbdinfo] --map shows the holes of a sparse engine device', async () => {
    await sparseDisk('disk1', 64 * MiB, [[4 * MiB, MiB], [40 * MiB, 64 * KiB]]);
    const map = await nbdinfoMap(server.uriFor('disk1'));
    expect(runsOf(map, 0)).toEqual([[4 * MiB, MiB], [40 * MiB, 64 * KiB]]); // data
    expect(runsOf(map, 3)).toEqual([[0, 4 * MiB], [5 * MiB, 35 * MiB], [40 * MiB + 64 * KiB, 24 * MiB - 64 * KiB]]); // hole,zero
  });

  it.skipIf(!hasCommand('nbdinfo'))(
    '[nbdinfo] --map of a snapshot image: the original\'s holes at take, chunks held in the difference storage are data',
    async () => {
      await sparseDisk('disk1', 64 * MiB, [[4 * MiB, MiB]]);
      const image = await takeSnapshot('disk1');
      // A write to the original after take: its chunk (a hole at take) is copied to the difference storage.
      await engine.device('disk1').write(20 * MiB, Buffer.alloc(4096, 0xaa));
      // More data in the original after take: the image does not see it (the chunk is copied first).
      await engine.device('disk1').write(30 * MiB, Buffer.alloc(64 * KiB, 0xbb));
      const map = await nbdinfoMap(server.uriFor(image));
      expect(runsOf(map, 0)).toEqual([[4 * MiB, MiB], [20 * MiB, 64 * KiB], [30 * MiB, 64 * KiB]]);
      expect(map.reduce((n, e) => n + e.length, 0)).toBe(64 * MiB);
      // The copied chunks read as they were at take: zeroes.
      const { stdout } = await run('nbdcopy', [server.uriFor(image), '-'], { encoding: 'buffer', maxBuffer: 128 * MiB });
      expect((stdout as Buffer).subarray(20 * MiB, 20 * MiB + 64 * KiB).equals(Buffer.alloc(64 * KiB))).toBe(true);
      // The live device shows the new data as data.
      expect(runsOf(await nbdinfoMap(server.uriFor('disk1')), 0)).toEqual([[4 * MiB, MiB], [20 * MiB, 4096], [30 * MiB, 64 * KiB]]);
    },
  );

  it.skipIf(!hasCommand('nbdinfo'))(
    '[nbdinfo] --map=blksnap:changed-since:1 lists exactly the blocks written after the take, as the engine\'s CBT map has them',
    async () => {
      await sparseDisk('disk1', 64 * MiB, []);
      const dev = engine.device('disk1');
      // Tracked, before the take: change number 1.
      const image = await takeSnapshot('disk1', () => dev.write(2 * MiB, Buffer.alloc(4096, 1)));
      await dev.write(8 * MiB + 4096, Buffer.alloc(512, 2)); // after: change number 2
      await dev.write(30 * MiB - 4096, Buffer.alloc(8192, 2)); // straddles two tracking blocks
      const uri = server.uriFor('disk1');

      const since1 = await nbdinfoMap(uri, 'blksnap:changed-since:1');
      expect(runsOf(since1, 1)).toEqual([[8 * MiB, CBT_BLOCK], [30 * MiB - CBT_BLOCK, 2 * CBT_BLOCK]]);
      // The same blocks as the engine's own (active) CBT table: numbers > 1.
      const table = await engine.cbtMapActive('disk1', 0, (64 * MiB) / CBT_BLOCK);
      const fromTable: number[] = [];
      table.forEach((n, i) => n > 1 && fromTable.push(i * CBT_BLOCK));
      const fromMap = runsOf(since1, 1).flatMap(([o, l]) => Array.from({ length: l / CBT_BLOCK }, (_, i) => o + i * CBT_BLOCK));
      expect(fromMap).toEqual(fromTable);

      // qemu's dirty-bitmap form answers the same; since 0 adds the write before the take.
      expect(await nbdinfoMap(uri, 'qemu:dirty-bitmap:blksnap-1')).toEqual(since1);
      expect(runsOf(await nbdinfoMap(uri, 'blksnap:changed-since:0'), 1)).toEqual([
        [2 * MiB, CBT_BLOCK],
        [8 * MiB, CBT_BLOCK],
        [30 * MiB - CBT_BLOCK, 2 * CBT_BLOCK],
      ]);
      // The snapshot image carries the table frozen at take (readcbtmap): only the write before it.
      expect(runsOf(await nbdinfoMap(server.uriFor(image), 'blksnap:changed-since:0'), 1)).toEqual([[2 * MiB, CBT_BLOCK]]);
      const frozen = await engine.cbtMap('disk1', 0, (64 * MiB) / CBT_BLOCK);
      const frozenDirty: number[] = [];
      frozen.forEach((n, i) => n > 0 && frozenDirty.push(i * CBT_BLOCK));
      expect(frozenDirty).toEqual([2 * MiB]);
    },
  );

  it.skipIf(!hasCommand('qemu-img'))('[qemu-img] map --output=json over the export agrees with the image file\'s own allocation', async () => {
    const path = await sparseDisk('disk1', 32 * MiB, [[0, 8 * KiB], [MiB + 4 * KiB, 12 * KiB], [17 * MiB, 3 * MiB], [32 * MiB - 4 * KiB, 4 * KiB]]);
    type QemuMapEntry = { start: number; length: number; data: boolean; zero: boolean };
    const strip = (text: string): QemuMapEntry[] =>
      (JSON.parse(text) as QemuMapEntry[]).map(({ start, length, data, zero }) => ({ start, length, data, zero }));
    const overNbd = strip((await run('qemu-img', ['map', '--output=json', '-f', 'raw', server.uriFor('disk1')])).stdout);
    const ofFile = strip((await run('qemu-img', ['map', '--output=json', '-f', 'raw', path])).stdout);
    expect(overNbd).toEqual(ofFile);
    expect(overNbd.filter((e) => e.data).map((e) => [e.start, e.length])).toEqual([
      [0, 8 * KiB],
      [MiB + 4 * KiB, 12 * KiB],
      [17 * MiB, 3 * MiB],
      [32 * MiB - 4 * KiB, 4 * KiB],
    ]);
  });

  it.skipIf(!hasCommand('nbdinfo'))('[nbdinfo] structured replies, cache, fast zero and the contexts are advertised; read-only images have no fast zero', async () => {
    await sparseDisk('disk1', 8 * MiB, []);
    const image = await takeSnapshot('disk1');
    const probe = async (what: string, uri: string): Promise<boolean> =>
      run('nbdinfo', ['--can', what, uri]).then(
        () => true,
        (err: { code?: number }) => {
          if (err.code === 2) return false; // nbdinfo --can: exit 2 = the server cannot
          throw err;
        },
      );
    const uri = server.uriFor('disk1');
    expect(await probe('structured-reply', uri)).toBe(true);
    expect(await probe('cache', uri)).toBe(true);
    expect(await probe('fast-zero', uri)).toBe(true);
    expect(await probe('fast-zero', server.uriFor(image))).toBe(false);
    const info = JSON.parse((await run('nbdinfo', ['--json', uri])).stdout) as { structured: boolean; exports: { contexts: string[] }[] };
    expect(info.structured).toBe(true);
    expect(info.exports[0]?.contexts).toEqual([
      'base:allocation',
      'blksnap:changed-since:0',
      'blksnap:changed-since:1',
      'qemu:dirty-bitmap:blksnap-0',
      'qemu:dirty-bitmap:blksnap-1',
    ]);
  });

  it.skipIf(!hasCommand('qemu-img') || !hasCommand('nbdcopy'))(
    '[qemu-img, nbdcopy] copies of a sparse export are identical to the image and keep its holes',
    async () => {
      const path = await sparseDisk('disk1', 64 * MiB, [[3 * MiB, MiB], [50 * MiB + 512 * KiB, 256 * KiB]]);
      const original = await readFile(path);
      const converted = join(dir, 'converted.raw');
      await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', server.uriFor('disk1'), converted]);
      expect((await readFile(converted)).equals(original)).toBe(true);
      const { stdout } = await run('qemu-img', ['map', '--output=json', '-f', 'raw', converted]);
      const data = (JSON.parse(stdout) as { start: number; length: number; data: boolean }[]).filter((e) => e.data);
      // qemu-img convert always allocates the target's first 4 KiB (it probes the alignment there); the rest are our holes.
      expect(data.map((e) => [e.start, e.length])).toEqual([[0, 4096], [3 * MiB, MiB], [50 * MiB + 512 * KiB, 256 * KiB]]);

      const copied = join(dir, 'copied.raw');
      await writeFile(copied, '');
      await truncate(copied, 64 * MiB);
      await run('nbdcopy', [server.uriFor('disk1'), copied]);
      expect((await readFile(copied)).equals(original)).toBe(true);
    },
  );
});
