/**
 * Backups in the guest from the real module's image device, through the code path
 * the helper's backup job uses (openDeviceSource, then backupPoint): one full, known
 * writes, one incremental; `qemu-img compare` (in the guest) confirms each point
 * against the image device it was made from while that snapshot is still held.
 */
import { deepStrictEqual, equal, ok } from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { SnapshotCreateParams, SnapshotId } from '../../../engine/abi/types.js';
import { backupPoint } from '../../../engine/backup/index.js';
import type { Manifest } from '../../../engine/backup/index.js';
import type { HelperBackends } from '../../../engine/helper/backends.js';
import { openDeviceSource } from '../../../engine/helper/backup-source.js';
import { ownerOf } from '../../../engine/helper/owner.js';
import { MiB, writeRandom } from './block-io.js';
import type { ScenarioContext } from './scenario.js';

export interface BackupDeps {
  original: string;
  work: string;
  spare: string;
  createAndTake(ctx: ScenarioContext, params: SnapshotCreateParams): Promise<SnapshotId>;
  checkCbt(ctx: ScenarioContext, label: string): Promise<unknown>;
}

/** qemu-img compare's exit status (0 identical, 1 different) and its words. */
function qemuCompare(a: string, aFormat: string, b: string, bFormat = 'raw'): { status: number | null; text: string } {
  const r = spawnSync('/usr/bin/qemu-img', ['compare', '-f', aFormat, '-F', bFormat, a, b], { encoding: 'utf8' });
  return { status: r.status, text: `${r.stdout}${r.stderr}`.trim() || String(r.error ?? '') };
}

export async function backupScenario(ctx: ScenarioContext, deps: BackupDeps): Promise<void> {
  const { steps, driver, model } = ctx;
  const backends: HelperBackends = {
    driver,
    engine: null,
    images: null,
    listBlockDevices: async () => [],
    nbd: null,
    driverVersion: '7.0.0.0',
    owner: ownerOf(0),
  };
  const dir = join(deps.work, 'backups', 'vda');
  const image = `/dev/${ctx.imageName}`;

  const point = async (kind: 'full' | 'incremental', storage: string): Promise<Manifest> => {
    const id = await deps.createAndTake(ctx, { diffStoragePath: join(deps.work, storage), limitSectors: (32 * MiB) / 512 });
    try {
      await deps.checkCbt(ctx, `${kind} backup take`);
      const source = await openDeviceSource(backends, deps.original);
      let manifest: Manifest;
      try {
        equal(source.image, ctx.imageName, 'the helper source reads the module image');
        manifest = (await backupPoint({ dir, source: source.reader, device: source.identity, cbt: source.cbt, cbtMap: source.cbtMap, kind }))
          .manifest;
      } finally {
        await source.close();
      }
      equal(manifest.kind, kind);
      const same = qemuCompare(join(dir, manifest.image.file), manifest.image.format, image);
      equal(same.status, 0, `qemu-img compare of the ${kind} point with ${image}: ${same.text}`);
      return manifest;
    } finally {
      await driver.snapshotDestroy(id);
    }
  };

  const full = await steps.run('full backup from the image device; qemu-img compare in the guest', async () => {
    const m = await point('full', 'diff-backup-full');
    return { file: m.image.file, format: m.image.format, fileBytes: m.image.fileBytes, changeNumber: m.cbt.changeNumber, copiedBytes: m.sizes.copiedBytes };
  });
  if (!full) return;

  await steps.run('incremental backup of known writes; qemu-img compare in the guest', async () => {
    // 1 MiB at 26 MiB (16 blocks) and 256 KiB at 30 MiB (4 blocks) between the two takes
    await writeRandom(deps.original, 26 * MiB, MiB);
    model.written(26 * MiB, MiB);
    await writeRandom(deps.original, 30 * MiB, 256 * 1024);
    model.written(30 * MiB, 256 * 1024);
    const m = await point('incremental', 'diff-backup-incr');
    equal(m.sizes.changedBlocks, 20, 'the incremental copies the 20 written blocks');
    deepStrictEqual(m.sizes.cbtMissedBlocks, 0);
    const fullFile = join(dir, full.file);
    const differs = qemuCompare(join(dir, m.image.file), 'qcow2', fullFile, full.format);
    ok(differs.status === 1, `the incremental differs from the full: ${differs.text}`);
    return { file: m.image.file, fileBytes: m.image.fileBytes, changedBlocks: m.sizes.changedBlocks, parent: m.parent };
  });
}
