/**
 * backup.verify with compareWithSnapshot: a point whose snapshot is still held is read
 * side by side with the snapshot image; a difference is named by its byte range.
 * The mismatch is made by writing into the snapshot image (a writable-images snapshot).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HelperClient } from '../../../engine/protocol/client.js';
import { hasCommand } from '../../helpers/env.js';
import { backup, deviceUri, imageUri, qemuWrite, waitJob } from './backup-support.js';
import { connectClient, spawnDaemon } from './spawn-daemon.js';
import type { SpawnedDaemon } from './spawn-daemon.js';

const tools = hasCommand('qemu-io');
const MiB = 1 << 20;

describe.skipIf(!tools)('[qemu-io] verify against the held snapshot', () => {
  let d: SpawnedDaemon;
  let client: HelperClient;
  let set: string;

  beforeAll(async () => {
    d = await spawnDaemon();
    client = await connectClient(d.socketPath);
    await client.call('images.create', { path: join(d.dir, 'disk1.img'), size: 8 * MiB });
    set = join(d.dir, 'set');
    mkdirSync(set);
    qemuWrite(await deviceUri(client, 'disk1'), 0x11, '0', '2M');
  });

  afterAll(async () => {
    client?.close();
    await d?.cleanup();
  });

  it('no held snapshot: refused in words', async () => {
    const { id } = await client.call('snapshotCreate', { diffStoragePath: join(d.dir, 'diff0'), limitSectors: 1 << 15, devices: ['disk1'] });
    await client.call('snapshotTake', { id });
    const job = await backup(client, { snapshotId: id, dir: set, kind: 'full' });
    expect(job.state, JSON.stringify(job.error)).toBe('done');
    await client.call('snapshotDestroy', { id });
    await expect(client.call('backup.verify', { dir: set, compareWithSnapshot: true })).rejects.toMatchObject({
      errno: 'ENOENT',
      message: expect.stringMatching(/no backup in .* was taken from a snapshot that is still held/),
    });
  });

  it('equal while the snapshot is unchanged; a write into its image is named by its byte range', async () => {
    qemuWrite(await deviceUri(client, 'disk1'), 0x22, '4M', '1M');
    const { id } = await client.call('snapshotCreate', { diffStoragePath: join(d.dir, 'diff1'), limitSectors: 1 << 15, devices: ['disk1'], writableImages: true });
    await client.call('snapshotTake', { id });
    const job = await backup(client, { snapshotId: id, dir: set, kind: 'incremental' });
    expect(job.state, JSON.stringify(job.error)).toBe('done');
    const point = job.result?.kind === 'backup' ? job.result.points[0]!.pointId : '';

    const same = await waitJob(client, (await client.call('backup.verify', { dir: set, point, compareWithSnapshot: true })).jobId);
    expect(same.result).toEqual({ kind: 'verify', ok: true, points: [{ pointId: point, ok: true, problem: null }] });
    // the point and the snapshot image are each read once
    expect(same.total).toBe(16 * MiB);

    // the whole set: the full's snapshot is gone (a warning), the incremental is compared
    const all = await waitJob(client, (await client.call('backup.verify', { dir: set, compareWithSnapshot: true })).jobId);
    expect(all.result).toMatchObject({ kind: 'verify', ok: true });
    expect(all.warnings).toEqual(['1 of 2 backup points are not compared with a snapshot: theirs are no longer held']);

    qemuWrite(await imageUri(client, 'disk1'), 0x33, '6144', '1024'); // two sectors at 6 KiB
    qemuWrite(await imageUri(client, 'disk1'), 0x44, '5M', '512');
    const differs = await waitJob(client, (await client.call('backup.verify', { dir: set, point, compareWithSnapshot: true })).jobId);
    expect(differs.result).toEqual({
      kind: 'verify',
      ok: false,
      points: [{ pointId: point, ok: false, problem: `the backup differs from the image of snapshot ${id} of ${join(d.dir, 'disk1.img')} it was taken from at bytes 6144-7167 and 5242880-5243391` }],
    });
    // without the comparison the point itself is sound: it still matches its hashes
    const plain = await waitJob(client, (await client.call('backup.verify', { dir: set, point })).jobId);
    expect(plain.result).toMatchObject({ kind: 'verify', ok: true });
    await client.call('snapshotDestroy', { id });
  });
});
