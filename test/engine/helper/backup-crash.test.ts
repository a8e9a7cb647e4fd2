/**
 * A helper killed with SIGKILL in the middle of a backup and of a restore: the
 * catalog stays consistent, nothing half-written looks like a point or a restored
 * image, and the next run succeeds.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { HelperClient } from '../../../engine/protocol/client.js';
import type { JobState } from '../../../engine/protocol/backup-schemas.js';
import { hasCommand } from '../../helpers/env.js';
import { backup, deviceUri, imageUri, qemuWrite, sha256OfFile, sha256OfUri, takeSnapshot, waitJob } from './backup-support.js';
import { connectClient, spawnDaemon } from './spawn-daemon.js';
import type { SpawnedDaemon } from './spawn-daemon.js';

const tools = hasCommand('qemu-io') && hasCommand('nbdcopy');
const SIZE = 512 << 20;

/** Starts a job, SIGKILLs the helper as soon as the job reports bytes done (and before it ends). */
async function killMidJob(d: SpawnedDaemon, client: HelperClient, start: () => Promise<{ jobId: string }>): Promise<JobState> {
  await client.call('subscribe', { topics: ['job'] });
  let seen: JobState | null = null;
  const killed = new Promise<JobState>((resolve) => {
    client.on('job', (s) => {
      if (!seen && s.state === 'running' && s.done > 0 && s.done < s.total) {
        seen = s;
        d.proc.kill('SIGKILL');
        resolve(s);
      }
    });
  });
  await start();
  const state = await killed;
  await new Promise<void>((r) => (d.proc.exitCode !== null || d.proc.signalCode !== null ? r() : d.proc.once('exit', () => r())));
  client.close();
  return state;
}

describe.skipIf(!tools)('[qemu] SIGKILL of the helper mid-backup and mid-restore', () => {
  let d: SpawnedDaemon | null = null;

  afterAll(async () => {
    await d?.cleanup();
  });

  it('leaves no valid-looking point or restored image, and the next runs succeed', async () => {
    d = await spawnDaemon();
    let client = await connectClient(d.socketPath);
    await client.call('images.create', { path: join(d.dir, 'disk1.img'), size: SIZE });
    // data, not holes: a full skips holes, and the job must still be running when the helper is killed
    qemuWrite(await deviceUri(client, 'disk1'), 0x5a, '0', '256M');
    const set = join(d.dir, 'set');
    mkdirSync(set);
    let id = await takeSnapshot(client, d.dir, ['disk1'], 'k1');
    const mid = await killMidJob(d, client, () => client.call('backup.start', { snapshotId: id, dir: set, kind: 'full' }));
    expect(mid.done).toBeLessThan(SIZE);

    const dir = d.dir;
    d = await spawnDaemon([], {}, dir);
    client = await connectClient(d.socketPath);
    // nothing that looks like a point: no manifest, so the catalog has no chain
    expect((await client.call('backup.catalog', { dir: set })).chains).toEqual([]);
    expect(readdirSync(join(set, 'disk1')).filter((n) => !n.startsWith('.') && (n.endsWith('.json') || n.endsWith('.qcow2')))).toEqual([]);
    // the next run succeeds and removes what the killed one left
    id = await takeSnapshot(client, dir, ['disk1'], 'k2');
    const takeSha = sha256OfUri(await imageUri(client, 'disk1'));
    const job = await backup(client, { snapshotId: id, dir: set, kind: 'full' });
    expect(job.state, JSON.stringify(job.error)).toBe('done');
    expect(readdirSync(join(set, 'disk1')).filter((n) => n.startsWith('.'))).toEqual([]);
    const point = job.result?.kind === 'backup' ? job.result.points[0]!.pointId : '';
    await client.call('snapshotDestroy', { id });

    // mid-restore: the target never appears under its name
    const target = join(dir, 'restored.img');
    const midRestore = await killMidJob(d, client, () => client.call('backup.restore', { dir: set, point, target }));
    expect(midRestore.kind).toBe('restore');
    expect(existsSync(target)).toBe(false);
    d = await spawnDaemon([], {}, dir);
    client = await connectClient(d.socketPath);
    // the killed restore's file was recorded before it was named: the new helper removed it
    expect(readdirSync(dir).filter((n) => n.startsWith('.partial-'))).toEqual([]);
    expect(d.log()).toMatch(/unfinished image restore to .*restored\.img/);
    const r = await waitJob(client, (await client.call('backup.restore', { dir: set, point, target })).jobId);
    expect(r.state, JSON.stringify(r.error)).toBe('done');
    expect(sha256OfFile(target)).toBe(takeSha);
    expect(readdirSync(dir).filter((n) => n.startsWith('.partial-'))).toEqual([]);
    client.close();
  }, 120_000);
});
