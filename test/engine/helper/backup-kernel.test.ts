/**
 * Backup jobs with the kernel driver: CBT state and map through the (simulated)
 * module's ioctls, the snapshot image read from its block device (a file stands in
 * for /dev/blksnap-image_8:16 here), the device identity from block-device
 * discovery; cancel and the writable-images warning.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KernelDriver } from '../../../engine/kernel/kernel-driver.js';
import { FakeIoctlLayer } from '../kernel/fake-ioctl-layer.js';
import type { JobState } from '../../../engine/protocol/backup-schemas.js';
import { BackupExports } from '../../../engine/helper/backup-exports.js';
import { backupHandlers } from '../../../engine/helper/backup-handlers.js';
import type { BackupHandlers } from '../../../engine/helper/backup-handlers.js';
import { WRITABLE_IMAGES_WARNING } from '../../../engine/helper/backup-jobs.js';
import { CallerFs } from '../../../engine/helper/caller-fs.js';
import type { ClientContext } from '../../../engine/helper/service.js';
import { startBrowseExports } from '../../../engine/helper/nbd-exports.js';
import type { NbdExports } from '../../../engine/helper/nbd-exports.js';
import { SnapshotBook } from '../../../engine/helper/snapshot-book.js';
import { hasCommand } from '../../helpers/env.js';
import { kernelBackends } from './kernel-backends.js';

const MiB = 1 << 20;
const SDB = '/dev/fake-sdb';
const ctx: ClientContext = { subscriptions: new Set() };

describe.skipIf(!hasCommand('qemu-img'))('[qemu] backup jobs with the kernel driver (simulated module)', () => {
  let dir: string;
  let fake: FakeIoctlLayer;
  let driver: KernelDriver;
  let book: SnapshotBook;
  let h: BackupHandlers;
  /** The same, in a helper that started no NBD server at all. */
  let noNbd: BackupHandlers;
  let browse: NbdExports;
  const browsed = new BackupExports();
  let set: string;
  let image: Buffer;
  const reports: JobState[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-backup-kernel-'));
    set = join(dir, 'set');
    mkdirSync(set);
    fake = new FakeIoctlLayer();
    fake.addDevice({ path: SDB, capacity: 8 * MiB, major: 8, minor: 16 });
    driver = new KernelDriver({ layer: fake, resolveDevice: (mj, mn) => (mj === 8 && mn === 16 ? SDB : `${mj}:${mn}`) });
    book = new SnapshotBook();
    const owner = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    const listBlockDevices = async (): Promise<{ path: string; name: string; capacity: number; model: string }[]> => [{ path: SDB, name: 'fake-sdb', capacity: 8 * MiB, model: 'FAKE DISK' }];
    // as the daemon does with the kernel driver: an NBD server for browsed backup points only
    browse = await startBrowseExports(join(dir, 'browse.sock'), owner, () => undefined, browsed);
    const backends = kernelBackends(driver, { owner, listBlockDevices, browseNbd: browse, backupExports: browsed });
    noNbd = backupHandlers({
      backends: kernelBackends(driver, { owner, listBlockDevices }),
      book,
      files: new CallerFs(owner),
      resolveDevice: async (ref) => ref,
      report: () => undefined,
      log: () => undefined,
    }).handlers;
    h = backupHandlers({
      backends,
      book,
      files: new CallerFs(owner),
      resolveDevice: async (ref) => ref,
      report: (s) => reports.push(s),
      log: () => undefined,
      source: { imageDevicePath: (name) => join(dir, name) },
    }).handlers;
    image = randomBytes(8 * MiB);
  });

  afterAll(async () => {
    await browse?.close();
    await browsed.closeAll();
    await driver.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A taken snapshot of SDB whose image device (a file) holds `content`. */
  async function take(tag: string, content: Buffer): Promise<string> {
    const id = await driver.snapshotCreate({ diffStoragePath: join(dir, `diff-${tag}`), limitSectors: 4096 });
    await driver.snapshotAdd(id, SDB);
    await driver.snapshotTake(id);
    book.add({ id, devices: [SDB], taken: true, storagePath: null, limitSectors: null });
    const { image: name } = await driver.snapshotInfo(SDB);
    writeFileSync(join(dir, name), content);
    return id;
  }

  async function run(start: Promise<{ jobId: string }>): Promise<JobState> {
    const { jobId } = await start;
    for (;;) {
      const { job } = await h['jobs.wait']({ jobId, timeoutMs: 10_000 }, ctx);
      if (job.state !== 'running') return job;
    }
  }

  it('a full and an incremental read the image device and the module\'s CBT map', async () => {
    let id = await take('1', image);
    const full = await run(h['backup.start']({ snapshotId: id, dir: set, kind: 'full' }, ctx));
    expect(full.state, JSON.stringify(full.error)).toBe('done');
    const fullPoint = full.result?.kind === 'backup' ? full.result.points[0]! : null;
    expect(fullPoint).toMatchObject({ device: SDB, chainDir: join(set, 'dev-fake-sdb'), pointKind: 'full' });
    const fullFile = join(set, 'dev-fake-sdb', `${fullPoint!.pointId}.qcow2`);
    expect(execFileSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', fullFile, join(dir, (await driver.snapshotInfo(SDB)).image)], { encoding: 'utf8' })).toMatch(/identical/);
    await driver.snapshotDestroy(id);
    book.delete(id);

    // a 4 KiB write at 1 MiB, as the module's tracker sees it, and in the next take's image
    fake.write(SDB, 2048, 8);
    const changed = Buffer.from(image);
    randomBytes(4096).copy(changed, MiB);
    id = await take('2', changed);
    const plan = await h['backup.plan']({ dir: set, snapshotId: id }, ctx);
    const { blockSize } = await driver.cbtInfo(SDB);
    expect(plan.devices[0]).toMatchObject({ device: SDB, points: 1, reason: null, changedBytes: blockSize });
    const inc = await run(h['backup.start']({ snapshotId: id, dir: set, kind: 'incremental' }, ctx));
    expect(inc.state, JSON.stringify(inc.error)).toBe('done');
    const incPoint = inc.result?.kind === 'backup' ? inc.result.points[0]! : null;
    expect(incPoint).toMatchObject({ pointKind: 'incremental', changedBytes: blockSize });
    const incFile = join(set, 'dev-fake-sdb', `${incPoint!.pointId}.qcow2`);
    expect(execFileSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', incFile, join(dir, (await driver.snapshotInfo(SDB)).image)], { encoding: 'utf8' })).toMatch(/identical/);
    const cat = await h['backup.catalog']({ dir: set }, ctx);
    expect(cat.chains[0]!.device).toEqual({ path: SDB, size: 8 * MiB, model: 'FAKE DISK', serial: null });
    await driver.snapshotDestroy(id);
    book.delete(id);
  });

  it('warns when the snapshot\'s images are writable; a cancelled job leaves no point', async () => {
    const id = await take('3', image);
    (book.get(id) as { writableImages?: boolean }).writableImages = true;
    const before = readdirSync(join(set, 'dev-fake-sdb')).sort();
    const { jobId } = await h['backup.start']({ snapshotId: id, dir: set, kind: 'incremental' }, ctx);
    await h['jobs.cancel']({ jobId }, ctx);
    const { job } = await h['jobs.wait']({ jobId, timeoutMs: 10_000 }, ctx);
    expect(job).toMatchObject({ state: 'cancelled', error: { code: 'ECANCELED' }, warnings: [WRITABLE_IMAGES_WARNING] });
    expect(readdirSync(join(set, 'dev-fake-sdb')).sort()).toEqual(before);
    expect(reports.filter((r) => r.jobId === jobId).at(-1)).toMatchObject({ state: 'cancelled' });
    // browsing needs an NBD server: a helper without one says so
    await expect(noNbd['backup.export']({ dir: set, point: (await h['backup.catalog']({ dir: set }, ctx)).chains[0]!.points[0]!.id }, ctx)).rejects.toMatchObject({
      errno: 'EOPNOTSUPP',
      message: expect.stringMatching(/needs the helper's NBD server/),
    });
    await driver.snapshotDestroy(id);
  });

  it.skipIf(!hasCommand('nbdcopy'))('[nbdcopy] browse with the kernel driver: the point is served read-only on the browse NBD server and reads as the point', async () => {
    const cat = await h['backup.catalog']({ dir: set }, ctx);
    const point = cat.chains[0]!.points.find((p) => p.kind === 'incremental')!;
    const e = await h['backup.export']({ dir: set, point: point.id }, ctx);
    expect(e.uri).toBe(browse.uriFor(e.name));
    expect(e.uri).toContain(`socket=${join(dir, 'browse.sock')}`);
    expect(browse.readOnly(e.name)).toBe(true);
    const copied = join(dir, 'browsed.raw');
    const flat = join(dir, 'flat.raw');
    // asynchronously: the NBD server answering nbdcopy runs in this process
    await promisify(execFile)('nbdcopy', [e.uri, copied]);
    execFileSync('qemu-img', ['convert', '-O', 'raw', join(point.file.startsWith('/') ? '' : join(set, 'dev-fake-sdb'), point.file), flat]);
    const got = readFileSync(copied);
    expect(got.length).toBe(8 * MiB);
    expect(got.equals(readFileSync(flat))).toBe(true);
    await h['backup.unexport']({ name: e.name }, ctx);
    expect(browse.readOnly(e.name)).toBeNull();
  });
});
