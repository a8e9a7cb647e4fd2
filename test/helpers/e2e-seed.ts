/**
 * Data on every screen for the layout and keyboard tests in browser mode, put in
 * through the contract (the page is open, so it receives the events): three 64 MiB
 * lab disks; a full backup of disk1 (so the Catalog has a point to restore); snapshot A,
 * of a third disk, taken and healthy; snapshot B, taken with changed blocks on the heatmap, then
 * failed on an overflowed 4 MiB limit (events, alert, error codes). Both disks are
 * selected and difference storage is allocated through the UI.
 */
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import type { BrowserMode } from './web-server.js';
import { allocateStorage, deviceRow } from './e2e-page.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

export interface Seeded {
  /** The backup folder holding disk1's full point. */
  backupDir: string;
  healthyId: string;
  failedId: string;
}

function must<T>(what: string, r: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }): T {
  if (!r.ok) throw new Error(`${what}: ${r.error.code} ${r.error.message}`);
  return r.value;
}

export async function seedScreens(page: Page, stack: BrowserMode): Promise<Seeded> {
  const api = stack.server.bridge?.api;
  if (api === undefined) throw new Error('the web server has no bridge');
  for (const name of ['disk1', 'disk2']) must(`createLabDisk ${name}`, await api.createLabDisk({ name, sizeBytes: 64 * MiB }));
  const uri = (device: string) => `nbd+unix:///${device}?socket=${stack.nbdSocketPath}`;
  const backupDir = join(stack.dir, 'backups');
  await mkdir(backupDir, { recursive: true });

  // A full backup of disk1 through a snapshot of its own, released afterwards.
  await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x33 0 1M', uri('disk1')]);
  const forBackup = must(
    'snapshotCreate (backup)',
    await api.snapshotCreate({ devices: ['disk1'], storagePath: join(stack.storageDir, 'seed-backup.img'), limitBytes: 16 * MiB }),
  );
  must('snapshotTake (backup)', await api.snapshotTake({ snapshotId: forBackup.snapshotId }));
  const job = must('backupStart', await api.backupStart({ snapshotId: forBackup.snapshotId, dir: backupDir, kind: 'full' }));
  const done = must('jobsWait', await api.jobsWait({ jobId: job.jobId, timeoutMs: 30_000 }));
  if (done.state !== 'done') throw new Error(`the seed backup ended ${done.state}`);
  must('snapshotDestroy (backup)', await api.snapshotDestroy({ snapshotId: forBackup.snapshotId }));

  // Snapshot B: written while tracked (heatmap), taken, then overflowed.
  const failed = must(
    'snapshotCreate (B)',
    await api.snapshotCreate({ devices: ['disk1', 'disk2'], storagePath: join(stack.storageDir, 'seed-b.img'), limitBytes: 4 * MiB }),
  );
  await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 4M', uri('disk1')]);
  must('snapshotTake (B)', await api.snapshotTake({ snapshotId: failed.snapshotId }));
  await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x22 16M 16M', uri('disk1')]);
  await page.getByTestId('event-alert').filter({ hasText: 'corrupted' }).waitFor({ timeout: 15_000 });

  // Snapshot A: healthy, held (its gauge and forecast show). A device may be in one snapshot only.
  must('createLabDisk disk3', await api.createLabDisk({ name: 'disk3', sizeBytes: 64 * MiB }));
  const healthy = must(
    'snapshotCreate (A)',
    await api.snapshotCreate({ devices: ['disk3'], storagePath: join(stack.storageDir, 'seed-a.img'), limitBytes: 32 * MiB }),
  );
  must('snapshotTake (A)', await api.snapshotTake({ snapshotId: healthy.snapshotId }));

  for (const name of ['disk1', 'disk2']) {
    await deviceRow(page, name).waitFor();
    await page.getByLabel(`Select ${name}`).check();
  }
  await allocateStorage(page, stack.storageDir, 16);
  return { backupDir, healthyId: healthy.snapshotId, failedId: failed.snapshotId };
}
