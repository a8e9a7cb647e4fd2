/**
 * Backup folders and restore targets with the rights of the user the helper works
 * for (PKEXEC_UID), not root's: nothing is written where that user could not write,
 * no symlink is followed, and what is written ends up owned by that user.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HelperClient } from '../../../engine/protocol/client.js';
import { isRoot } from '../../helpers/env.js';
import { backup, takeSnapshot, waitJob } from './backup-support.js';
import { connectClient, spawnDaemon } from './spawn-daemon.js';
import type { SpawnedDaemon } from './spawn-daemon.js';

const A = 4721;
const B = 4722;

describe.skipIf(!isRoot)('[root] backup folders and restore targets with the caller\'s rights (PKEXEC_UID)', () => {
  let base: string;
  let mine: string;
  let theirs: string;
  let roots: string;
  let d: SpawnedDaemon;
  let c: HelperClient;
  let snapshotId: string;

  const mk = (name: string, uid: number, mode: number): string => {
    const p = join(base, name);
    mkdirSync(p, { mode });
    chownSync(p, uid, uid);
    chmodSync(p, mode);
    return p;
  };

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'bm-backup-rights-'));
    chmodSync(base, 0o755);
    mine = mk('a', A, 0o700);
    theirs = mk('b', B, 0o755);
    roots = mk('root', 0, 0o755);
    writeFileSync(join(theirs, 'x.img'), Buffer.alloc(4 << 20));
    chownSync(join(theirs, 'x.img'), B, B);
    chmodSync(join(theirs, 'x.img'), 0o644);
    d = await spawnDaemon([], { PKEXEC_UID: String(A) });
    c = await connectClient(d.socketPath);
    await c.call('images.create', { path: join(mine, 'disk.img'), size: 4 << 20, name: 'disk' });
    snapshotId = await takeSnapshot(c, mine, ['disk'], 'rights');
  });

  afterAll(async () => {
    c?.close();
    await d?.cleanup();
    rmSync(base, { recursive: true, force: true });
  });

  it('refuses a set folder the user cannot write (root\'s, another user\'s) and one reached through a symlink', async () => {
    for (const dir of [roots, theirs]) {
      await expect(c.call('backup.start', { snapshotId, dir, kind: 'full' }), dir).rejects.toMatchObject({ errno: 'EACCES' });
    }
    expect(readdirSync(roots)).toEqual([]);
    expect(readdirSync(theirs)).toEqual(['x.img']);
    symlinkSync(roots, join(mine, 'link'));
    await expect(c.call('backup.start', { snapshotId, dir: join(mine, 'link'), kind: 'full' })).rejects.toMatchObject({ errno: 'ELOOP' });
    expect(readdirSync(roots)).toEqual([]);
  });

  it('a backup in the user\'s folder is the user\'s: chain folder, image, manifest', async () => {
    const set = join(mine, 'set');
    mkdirSync(set);
    chownSync(set, A, A);
    const job = await backup(c, { snapshotId, dir: set, kind: 'full' });
    expect(job.state, JSON.stringify(job.error)).toBe('done');
    const chain = join(set, 'disk');
    expect(statSync(chain).uid).toBe(A);
    const names = readdirSync(chain);
    expect(names.length).toBeGreaterThanOrEqual(2);
    for (const n of names) expect([n, statSync(join(chain, n)).uid]).toEqual([n, A]);
    // verify records too
    const v = await waitJob(c, (await c.call('backup.verify', { dir: set })).jobId);
    expect(v.state).toBe('done');
    for (const n of readdirSync(chain)) expect([n, statSync(join(chain, n)).uid]).toEqual([n, A]);
  });

  it('restores only where the user may write; a new image is the user\'s', async () => {
    const set = join(mine, 'set');
    const point = (await c.call('backup.catalog', { dir: set })).chains[0]!.points[0]!.id;
    await expect(c.call('backup.restore', { dir: set, point, target: join(roots, 'r.img') })).rejects.toMatchObject({ errno: 'EACCES' });
    await expect(c.call('backup.restore', { dir: set, point, target: join(theirs, 'x.img') })).rejects.toMatchObject({ errno: 'EACCES' });
    expect(readdirSync(roots)).toEqual([]);
    const target = join(mine, 'r.img');
    const job = await waitJob(c, (await c.call('backup.restore', { dir: set, point, target })).jobId);
    expect(job.state, JSON.stringify(job.error)).toBe('done');
    expect(statSync(target)).toMatchObject({ uid: A, size: 4 << 20 });
  });
});
