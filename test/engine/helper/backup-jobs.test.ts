/**
 * Backup jobs through a real helper (embedded engine): a full and an incremental
 * backup set checked with qemu-img against the snapshot images they came from, a
 * restore with the SHA-256 of the image at take, the chain refusals in words, and
 * the catalog.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HelperClient } from '../../../engine/protocol/client.js';
import type { JobState } from '../../../engine/protocol/backup-schemas.js';
import { hasCommand } from '../../helpers/env.js';
import { backup, deviceUri, imageUri, qemuWrite, sha256OfFile, sha256OfUri, takeSnapshot, waitJob } from './backup-support.js';
import { connectClient, spawnDaemon } from './spawn-daemon.js';
import type { SpawnedDaemon } from './spawn-daemon.js';

const tools = hasCommand('qemu-io') && hasCommand('qemu-img') && hasCommand('nbdcopy');
const MiB = 1 << 20;

function qemuImg(args: string[]): string {
  return execFileSync('qemu-img', args, { encoding: 'utf8', stdio: 'pipe' });
}

function pointFile(dir: string, key: string, job: JobState, index = 0): string {
  if (job.result?.kind !== 'backup') throw new Error(`not a backup result: ${JSON.stringify(job)}`);
  const p = job.result.points[index]!;
  return join(dir, key, `${p.pointId}.qcow2`);
}

describe.skipIf(!tools)('[qemu] backup jobs through the helper', () => {
  let d: SpawnedDaemon;
  let client: HelperClient;
  let set: string;
  const events: JobState[] = [];

  beforeAll(async () => {
    d = await spawnDaemon();
    client = await connectClient(d.socketPath);
    await client.call('images.create', { path: join(d.dir, 'disk1.img'), size: 16 * MiB });
    await client.call('images.create', { path: join(d.dir, 'disk2.img'), size: 8 * MiB });
    await client.call('subscribe', { topics: ['job'] });
    client.on('job', (s) => events.push(s));
    set = join(d.dir, 'set');
    mkdirSync(set);
    qemuWrite(await deviceUri(client, 'disk1'), 0x11, '0', '3M');
    qemuWrite(await deviceUri(client, 'disk2'), 0x22, '1M', '1M');
  });

  afterAll(async () => {
    client?.close();
    await d?.cleanup();
  });

  it('a backup of a snapshot not taken yet is refused: take the snapshot first', async () => {
    const { id } = await client.call('snapshotCreate', { diffStoragePath: join(d.dir, 'diff-untaken'), limitSectors: 4096, devices: ['disk1'] });
    await expect(client.call('backup.start', { snapshotId: id, dir: set, kind: 'full' })).rejects.toMatchObject({ errno: 'EINVAL', message: expect.stringMatching(/take the snapshot first/) });
    await client.call('snapshotDestroy', { id });
  });

  let firstDisk1 = '';
  let firstSha = '';
  it('a full backup set has one point per device, equal to the snapshot image it came from', async () => {
    const id = await takeSnapshot(client, d.dir, ['disk1', 'disk2'], 'full');
    const plan = await client.call('backup.plan', { dir: set, snapshotId: id });
    expect(plan.devices.map((p) => [p.device, p.points, p.allowed])).toEqual([
      ['disk1', 0, ['full']],
      ['disk2', 0, ['full']],
    ]);
    expect(plan.devices[0]!.reason).toBe(`there is no backup in ${join(set, 'disk1')} to continue from`);
    const job = await backup(client, { snapshotId: id, dir: set, kind: 'full' });
    expect(job.state, JSON.stringify(job.error)).toBe('done');
    expect(job.done).toBe(24 * MiB);
    expect(job.total).toBe(24 * MiB);
    expect(job.result?.kind === 'backup' && job.result.points.map((p) => [p.device, p.pointKind])).toEqual([['disk1', 'full'], ['disk2', 'full']]);
    firstDisk1 = pointFile(set, 'disk1', job, 0);
    for (const [i, dev] of [[0, 'disk1'], [1, 'disk2']] as const) {
      const file = pointFile(set, dev, job, i);
      // identical to the snapshot image it came from, and a sound qcow2
      expect(qemuImg(['compare', '-f', 'qcow2', '-F', 'raw', file, await imageUri(client, dev)])).toMatch(/Images are identical/);
      expect(qemuImg(['check', file])).toMatch(/No errors were found/);
    }
    firstSha = sha256OfUri(await imageUri(client, 'disk1'));
    // progress reached subscribers: running states, then the end with the result
    const mine = events.filter((e) => e.jobId === job.jobId);
    expect(mine.at(-1)).toMatchObject({ state: 'done', result: { kind: 'backup' } });
    expect(mine.slice(0, -1).every((e) => e.state === 'running' && e.result === null)).toBe(true);
    await client.call('snapshotDestroy', { id });
  });

  it('an incremental after writes holds the changed blocks; its chain reads as the new snapshot image', async () => {
    qemuWrite(await deviceUri(client, 'disk1'), 0x33, '8M', '1M');
    const id = await takeSnapshot(client, d.dir, ['disk1', 'disk2'], 'inc');
    const plan = await client.call('backup.plan', { dir: set, snapshotId: id });
    expect(plan.devices[0]).toMatchObject({ device: 'disk1', points: 1, allowed: ['full', 'incremental', 'differential'], reason: null });
    // 1 MiB written on disk1; the estimate counts whole tracking blocks, nothing for disk2
    expect(plan.devices[0]!.changedBytes).toBeGreaterThanOrEqual(MiB);
    expect(plan.devices[0]!.changedBytes).toBeLessThan(8 * MiB);
    expect(plan.devices[1]!.changedBytes).toBe(0);
    const job = await backup(client, { snapshotId: id, dir: set, kind: 'incremental' });
    expect(job.state, JSON.stringify(job.error)).toBe('done');
    // done/total are the changed blocks the job read (about the 1 MiB written), not the 24 MiB of the devices
    expect(job.total).toBeGreaterThanOrEqual(MiB);
    expect(job.total).toBeLessThan(4 * MiB);
    expect(job.done).toBe(job.total);
    const file = pointFile(set, 'disk1', job, 0);
    expect(qemuImg(['compare', '-f', 'qcow2', '-F', 'raw', file, await imageUri(client, 'disk1')])).toMatch(/Images are identical/);
    expect(qemuImg(['check', file])).toMatch(/No errors were found/);
    const chain = JSON.parse(qemuImg(['info', '--backing-chain', '--output=json', file])) as { filename: string }[];
    expect(chain.map((c) => c.filename)).toEqual([file, firstDisk1]);
    expect(job.result?.kind === 'backup' && job.result.points[0]!.changedBytes).toBeGreaterThanOrEqual(MiB);
    await client.call('snapshotDestroy', { id });
  });

  it('the catalog lists both chains with their points, and verify marks them ok', async () => {
    const { jobId } = await client.call('backup.verify', { dir: set });
    const v = await waitJob(client, jobId);
    expect(v.result).toMatchObject({ kind: 'verify', ok: true });
    expect(v.result?.kind === 'verify' && v.result.points.length).toBe(4);
    const cat = await client.call('backup.catalog', { dir: set });
    expect(cat.chains.map((c) => [c.chainDir, c.device.path, c.points.map((p) => [p.kind, p.verify])])).toEqual([
      [join(set, 'disk1'), join(d.dir, 'disk1.img'), [['full', 'ok'], ['incremental', 'ok']]],
      [join(set, 'disk2'), join(d.dir, 'disk2.img'), [['full', 'ok'], ['incremental', 'ok']]],
    ]);
    expect(cat.chains[0]!.points[1]!.parent).toBe(cat.chains[0]!.points[0]!.id);
    expect(cat.spaceUsed).toBeGreaterThan(4 * MiB);
  });

  it('a restore to a new file has the SHA-256 of the image at take', async () => {
    const cat = await client.call('backup.catalog', { dir: set });
    const full = cat.chains[0]!.points[0]!.id;
    const target = join(d.dir, 'restored-full.img');
    const { jobId } = await client.call('backup.restore', { dir: join(set, 'disk1'), point: full, target });
    const job = await waitJob(client, jobId);
    expect(job.state, JSON.stringify(job.error)).toBe('done');
    expect(sha256OfFile(target)).toBe(firstSha);
    expect(job.result).toMatchObject({ kind: 'restore', target, bytes: 16 * MiB, sha256: firstSha, matchesManifest: true });
    expect(readdirSync(d.dir).filter((n) => n.startsWith('.partial-'))).toEqual([]);
  });

  it('a restore onto an existing file full of stale bytes leaves zeroes where the image has holes', async () => {
    const cat = await client.call('backup.catalog', { dir: set });
    const full = cat.chains[0]!.points[0]!.id;
    const target = join(d.dir, 'stale.img');
    writeFileSync(target, Buffer.alloc(16 * MiB, 0xaa)); // what a reused disk holds
    const job = await waitJob(client, (await client.call('backup.restore', { dir: join(set, 'disk1'), point: full, target })).jobId);
    expect(job.state, JSON.stringify(job.error)).toBe('done');
    const got = readFileSync(target);
    // disk1 at take: 0x11 over 0-3 MiB, zeroes (holes of the image) after
    expect(got.subarray(0, 3 * MiB).every((b) => b === 0x11)).toBe(true);
    expect(got.indexOf(0xaa)).toBe(-1);
    expect(got.subarray(3 * MiB).every((b) => b === 0)).toBe(true);
    expect(sha256OfFile(target)).toBe(firstSha);
  });

  it('refuses restore targets: the source device, too small, in a snapshot', async () => {
    const cat = await client.call('backup.catalog', { dir: set });
    const full = cat.chains[0]!.points[0]!.id;
    const chain = join(set, 'disk1');
    await expect(client.call('backup.restore', { dir: chain, point: full, target: join(d.dir, 'disk1.img') })).rejects.toMatchObject({
      errno: 'EPERM',
      message: `${join(d.dir, 'disk1.img')} is the device this backup was taken from (${join(d.dir, 'disk1.img')}); pass --force to restore onto it`,
    });
    const small = join(d.dir, 'small.img');
    execFileSync('truncate', ['-s', '1M', small]);
    await expect(client.call('backup.restore', { dir: chain, point: full, target: small })).rejects.toMatchObject({
      errno: 'ENOSPC',
      message: `${small} is too small: 1 MiB for a 16 MiB image`,
    });
    const id = await takeSnapshot(client, d.dir, ['disk2'], 'busy');
    await expect(client.call('backup.restore', { dir: chain, point: full, target: join(d.dir, 'disk2.img'), force: true })).rejects.toMatchObject({
      errno: 'EBUSY',
      message: `${join(d.dir, 'disk2.img')} is in snapshot ${id}`,
    });
    await client.call('snapshotDestroy', { id });
  });

  it('chain breaks in words: a full on an existing chain, a reset tracker, a resized device, a missing parent', async () => {
    let id = await takeSnapshot(client, d.dir, ['disk1'], 'brk1');
    await expect(client.call('backup.start', { snapshotId: id, dir: set, kind: 'full' }).then((r) => waitJob(client, r.jobId))).resolves.toMatchObject({
      state: 'failed',
      error: { code: 'EEXIST', message: expect.stringMatching(new RegExp(`^${join(set, 'disk1')} already holds a backup chain`)) },
    });
    await client.call('snapshotDestroy', { id });

    // detach + attach: a new tracker with a new generation id
    await client.call('detach', { device: 'disk1' });
    await client.call('attach', { device: 'disk1' });
    id = await takeSnapshot(client, d.dir, ['disk1'], 'brk2');
    const plan = await client.call('backup.plan', { dir: set, snapshotId: id });
    expect(plan.devices[0]).toMatchObject({ allowed: ['full'], reason: 'the change tracker was reset (new generation id: the machine rebooted or the module was reloaded)' });
    const failed = await backup(client, { snapshotId: id, dir: set, kind: 'incremental' });
    expect(failed.error).toEqual({ code: 'EINVAL', message: 'the backup chain cannot continue: the change tracker was reset (new generation id: the machine rebooted or the module was reloaded)' });
    // allowFull: a new full, saying why
    const full = await backup(client, { snapshotId: id, dir: set, kind: 'incremental', allowFull: true });
    expect(full.result).toMatchObject({ kind: 'backup', points: [{ pointKind: 'full', fullBecause: expect.stringMatching(/change tracker was reset/) }] });
    await client.call('snapshotDestroy', { id });

    // the same file, grown: re-registered under the same name
    await client.call('images.remove', { image: 'disk2' });
    truncateSync(join(d.dir, 'disk2.img'), 12 * MiB);
    await client.call('images.add', { path: join(d.dir, 'disk2.img'), name: 'disk2' });
    id = await takeSnapshot(client, d.dir, ['disk2'], 'brk3');
    const grown = await backup(client, { snapshotId: id, dir: set, kind: 'incremental' });
    expect(grown.error?.message).toBe('the backup chain cannot continue: the device grew from 8 MiB to 12 MiB');
    await client.call('snapshotDestroy', { id });

    // disk1's latest full removed: the next incremental has no parent
    const cat = await client.call('backup.catalog', { dir: set });
    const latest = cat.chains[0]!.points.at(-1)!;
    rmSync(latest.file);
    id = await takeSnapshot(client, d.dir, ['disk1'], 'brk4');
    const orphan = await backup(client, { snapshotId: id, dir: set, kind: 'incremental' });
    expect(orphan.error?.message).toMatch(/^the backup chain cannot continue: the previous backup \d{4}-\d\d-\d\d \d\d:\d\d UTC is missing/);
    await client.call('snapshotDestroy', { id });
  });

  it('never reads outside a chain: an image swapped for a symlink, a manifest naming another file', async () => {
    const evil = join(d.dir, 'evil');
    mkdirSync(join(evil, 'disk1'), { recursive: true });
    const cat = await client.call('backup.catalog', { dir: set });
    const full = cat.chains[1]!.points[0]!;
    const manifestText = readFileSync(join(set, 'disk2', `${full.id}.json`), 'utf8');
    // the image replaced by a symlink to a file the user could not read
    writeFileSync(join(evil, 'disk1', `${full.id}.json`), manifestText);
    symlinkSync('/etc/shadow', join(evil, 'disk1', `${full.id}.qcow2`));
    await expect(client.call('backup.export', { dir: evil, point: full.id })).rejects.toMatchObject({ errno: 'ELOOP', message: `the backup image ${full.id}.qcow2 is a symbolic link (never followed)` });
    await expect(client.call('backup.restore', { dir: evil, point: full.id, target: join(d.dir, 'evil.img') })).rejects.toMatchObject({ errno: 'ELOOP' });
    const v = await waitJob(client, (await client.call('backup.verify', { dir: evil })).jobId);
    expect(v.result).toEqual({ kind: 'verify', ok: false, points: [{ pointId: full.id, ok: false, problem: `the backup image ${full.id}.qcow2 is a symbolic link (never followed)` }] });
    // a manifest naming a file elsewhere
    const m = JSON.parse(manifestText) as { image: { file: string; format: string } };
    m.image = { ...m.image, file: '/etc/shadow', format: 'raw' };
    writeFileSync(join(evil, 'disk1', `${full.id}.json`), JSON.stringify(m));
    await expect(client.call('backup.export', { dir: evil, point: full.id })).rejects.toMatchObject({ errno: 'EINVAL', message: expect.stringMatching(/names the image "\/etc\/shadow"/) });
    expect(existsSync(join(d.dir, 'evil.img'))).toBe(false);
  });

  it('jobs.list keeps the finished jobs; jobs.cancel of an unknown job is ESRCH', async () => {
    const { jobs } = await client.call('jobs.list', {});
    expect(jobs.length).toBeGreaterThan(5);
    expect(jobs.every((j) => j.state !== 'running')).toBe(true);
    await expect(client.call('jobs.cancel', { jobId: 'nope' })).rejects.toMatchObject({ errno: 'ESRCH' });
  });
});
