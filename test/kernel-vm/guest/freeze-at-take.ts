/**
 * Freeze at take on the real module: the work disk (ext4, mounted at /work) is
 * snapshotted right after a new file was written and fsync'ed there. fsync alone
 * leaves the file's inode and directory entry in ext4's journal; the module freezes
 * the file system during take (snapshot.c: freeze_bdev), which checkpoints the
 * journal, so the image mounts read-only WITHOUT journal replay (`-o ro,noload`)
 * and holds the file whole. A change made after the take is not in the image.
 */
import { equal, ok } from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import type { KernelDriver } from '../../../engine/kernel/index.js';
import { MiB } from './block-io.js';
import { helperStorage } from './helper-storage-forms.js';

const MOUNT = '/mnt/image';

function run(program: string, args: string[]): void {
  const r = spawnSync(program, args, { encoding: 'utf8' });
  equal(r.status, 0, `${program} ${args.join(' ')}: ${r.stderr}`);
}

export async function freezeAtTake(driver: KernelDriver, work: string, workDevice: string, storageDevice: string): Promise<unknown> {
  const data = randomBytes(3 * MiB);
  const file = `${work}/freeze-check.bin`;
  const fh = await open(file, 'wx');
  await fh.writeFile(data);
  await fh.sync();
  await fh.close();
  await driver.attach(workDevice);
  try {
    const id = await driver.snapshotCreate(await helperStorage('block-device', storageDevice, (32 * MiB) / 512));
    try {
      await driver.snapshotAdd(id, workDevice);
      await driver.snapshotTake(id);
      await writeFile(file, Buffer.alloc(4096, 1)); // after the take: not in the image
      const image = driver.imageDevicePath(await driver.snapshotInfo(workDevice));
      ok(image, 'the work disk has an image');
      mkdirSync(MOUNT, { recursive: true });
      run('/bin/mount', ['-t', 'ext4', '-o', 'ro,noload', image, MOUNT]);
      try {
        const got = await readFile(`${MOUNT}/freeze-check.bin`);
        equal(got.length, data.length, 'the file has its size in the image (journal checkpointed by the freeze)');
        ok(got.equals(data), 'the file written and synced before the take is whole in the image');
      } finally {
        run('/bin/umount', [MOUNT]);
      }
      return { image, bytes: data.length };
    } finally {
      await driver.snapshotDestroy(id);
    }
  } finally {
    await driver.detach(workDevice);
  }
}
