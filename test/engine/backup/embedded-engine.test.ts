/**
 * The backup layer on the embedded engine's real CBT and snapshot images: a full and
 * incrementals taken from snapshots while the device keeps being written. The
 * incrementals read only the blocks the CBT map marks (sha256: false, so no
 * whole-image read can make up for a wrong map); each restored point must equal the
 * snapshot image it came from, read through the engine.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { backupPoint } from '../../../engine/backup/backup-point.js';
import type { PointKind } from '../../../engine/backup/manifest.js';
import { restorePoint } from '../../../engine/backup/restore.js';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import { seededRandom } from '../../helpers/seeded-random.js';
import { MiB, saveRaw, sparseImage, tempDir } from './sparse-data.js';

const SIZE = 16 * MiB;
let dir = '';
let cleanup: () => Promise<void> = async () => undefined;
let engine: EmbeddedEngine;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('engine'));
  engine = createEmbeddedEngine({ params: { chunkMinimumShift: 16, trackingBlockMinimumShift: 16 } });
  await engine.addDevice({ path: await saveRaw(join(dir, 'disk.img'), sparseImage({ size: SIZE, seed: 40 })), name: 'disk' });
});
afterEach(async () => {
  await engine.close();
  await cleanup();
});

/** Random writes of 4-64 KiB at random sector offsets (not aligned to tracking blocks). */
async function scribble(seed: number, count: number): Promise<void> {
  const rnd = seededRandom(seed);
  const dev = engine.device('disk');
  for (let i = 0; i < count; i++) {
    const len = 512 * (8 + Math.floor(rnd() * 120));
    const at = 512 * Math.floor(rnd() * ((SIZE - len) / 512));
    const data = Buffer.alloc(len, 1 + Math.floor(rnd() * 255));
    if (rnd() < 0.2) data.fill(0);
    await dev.write(at, data);
  }
}

it('full, incremental and differential points of embedded-engine snapshots restore to the snapshot images, with writes during the backup', async () => {
  const chain = join(dir, 'chain');
  const kinds: PointKind[] = ['full', 'incremental', 'incremental', 'differential', 'incremental'];
  const changed: number[] = [];
  for (const [round, kind] of kinds.entries()) {
    await scribble(round + 1, 30);
    const id = await engine.snapshotCreate({ diffStoragePath: join(dir, `diff${round}`), limitSectors: (64 * MiB) / 512 });
    await engine.snapshotAdd(id, 'disk');
    await engine.snapshotTake(id);
    const info = await engine.cbtInfo('disk');
    const map = await engine.cbtMap('disk', 0, info.blockCount);
    const image = engine.image((await engine.snapshotInfo('disk')).image);
    const expected = createHash('sha256').update(await image.read(0, image.capacity)).digest('hex');
    // the device changes while the snapshot is backed up; none of it may reach the point
    const writing = scribble(100 + round, 20);
    const { manifest } = await backupPoint({
      dir: chain,
      source: image,
      device: { path: 'disk', size: info.deviceCapacity },
      cbt: { generationId: info.generationId, changeNumber: info.changesNumber, blockSize: info.blockSize },
      cbtMap: map,
      kind,
      sha256: false,
    });
    await writing;
    expect(manifest.kind).toBe(kind);
    // an incremental holds about the ~50 writes of one round; a differential all since the full
    if (kind === 'incremental') expect(manifest.sizes.copiedBytes).toBeLessThan(SIZE * 0.35);
    if (kind === 'differential') expect(manifest.sizes.changedBlocks).toBeGreaterThan(Math.max(...changed));
    if (kind === 'incremental') changed.push(manifest.sizes.changedBlocks);
    const restored = await restorePoint(chain, manifest.id, join(dir, `restored${round}.raw`));
    expect(restored.sha256).toBe(expected);
    await engine.snapshotDestroy(id);
  }
});
