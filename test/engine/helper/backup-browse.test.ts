/**
 * Browsing a backup: a point served read-only over the helper's NBD server reads
 * exactly as the point's image; [root] mounted through nbdfuse + losetup -r + mount
 * -o ro, it shows the files of the take. Restoring onto block devices: [root] a
 * mounted loop device is refused with its mount point, an unmounted one receives
 * the image.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HelperClient } from '../../../engine/protocol/client.js';
import { canUseFuse, canUseLoop, hasCommand } from '../../helpers/env.js';
import { backup, deviceUri, qemuWrite, sha256OfFile, takeSnapshot, waitJob } from './backup-support.js';
import { connectClient, spawnDaemon } from './spawn-daemon.js';
import type { SpawnedDaemon } from './spawn-daemon.js';

const tools = hasCommand('qemu-io') && hasCommand('qemu-img') && hasCommand('nbdcopy') && hasCommand('mkfs.ext4');
const MiB = 1 << 20;

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: 'pipe' });
}

describe.skipIf(!tools)('[qemu] browsing and restoring backups', () => {
  let d: SpawnedDaemon;
  let client: HelperClient;
  let set: string;
  let point = '';
  let pointFile = '';
  let takeSha = '';

  beforeAll(async () => {
    d = await spawnDaemon();
    client = await connectClient(d.socketPath);
    // a disk with an ext4 file system holding one file
    const content = join(d.dir, 'content');
    mkdirSync(content);
    writeFileSync(join(content, 'hello.txt'), 'files of the take\n');
    const img = join(d.dir, 'fs.img');
    run('truncate', ['-s', '16M', img]);
    run('mkfs.ext4', ['-q', '-F', '-d', content, img]);
    await client.call('images.add', { path: img, name: 'fs' });
    const id = await takeSnapshot(client, d.dir, ['fs'], 'browse');
    // written after the take: not in the backup
    qemuWrite(await deviceUri(client, 'fs'), 0x44, '0', '1M');
    set = join(d.dir, 'set');
    mkdirSync(set);
    const job = await backup(client, { snapshotId: id, dir: set, kind: 'full' });
    if (job.result?.kind !== 'backup') throw new Error(JSON.stringify(job.error));
    point = job.result.points[0]!.pointId;
    pointFile = join(set, 'fs', `${point}.qcow2`);
    const raw = join(d.dir, 'take.raw');
    run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', pointFile, raw]);
    takeSha = sha256OfFile(raw);
    await client.call('snapshotDestroy', { id });
  });

  afterAll(async () => {
    client?.close();
    await d?.cleanup();
  });

  it('serves a point read-only: nbdcopy reads it as the point, exports.list shows it, writes are refused', async () => {
    const e = await client.call('backup.export', { dir: set, point });
    expect(e).toMatchObject({ readOnly: true, uri: expect.stringMatching(/^nbd\+unix:\/\/\//) });
    expect(e.mountHint).toContain(`nbdfuse /tmp/${e.name} '${e.uri}'`);
    expect(e.mountHint).toMatch(/losetup -r .*\n.*mount -o ro/);
    const copy = join(d.dir, 'copy.raw');
    run('nbdcopy', [e.uri, copy]);
    expect(run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', copy, pointFile])).toMatch(/Images are identical/);
    const { exports } = await client.call('exports.list', {});
    expect(exports.find((x) => x.name === e.name)).toMatchObject({ kind: 'backup', readOnly: true, capacity: 16 * MiB, uri: e.uri });
    expect(() => run('qemu-io', ['-f', 'raw', '-c', 'write 0 4k', e.uri])).toThrow(/Could not open image: Permission denied/);
    await client.call('backup.unexport', { name: e.name });
    expect((await client.call('exports.list', {})).exports.some((x) => x.name === e.name)).toBe(false);
    await expect(client.call('backup.unexport', { name: e.name })).rejects.toMatchObject({ errno: 'ESRCH' });
  });

  it.skipIf(!canUseFuse || !canUseLoop || !hasCommand('nbdfuse'))('[root] nbdfuse + losetup -r + mount -o ro shows the files of the take', async () => {
    const e = await client.call('backup.export', { dir: set, point });
    const fuseDir = join(d.dir, 'fuse');
    const mnt = join(d.dir, 'mnt');
    mkdirSync(fuseDir);
    mkdirSync(mnt);
    const fuse: ChildProcess = spawn('nbdfuse', [fuseDir, e.uri], { stdio: 'ignore' });
    let loop = '';
    try {
      for (let i = 0; i < 100 && !existsSync(join(fuseDir, 'nbd')); i++) await new Promise((r) => setTimeout(r, 50));
      loop = run('losetup', ['-r', '-f', '--show', join(fuseDir, 'nbd')]).trim();
      run('mount', ['-o', 'ro', loop, mnt]);
      try {
        expect(readFileSync(join(mnt, 'hello.txt'), 'utf8')).toBe('files of the take\n');
      } finally {
        run('umount', [mnt]);
      }
    } finally {
      if (loop) run('losetup', ['-d', loop]);
      execFileSync('fusermount3', ['-u', fuseDir], { stdio: 'ignore' });
      fuse.kill();
      await client.call('backup.unexport', { name: e.name });
    }
  });

  it.skipIf(!canUseLoop)('[root] a mounted loop device is refused with its mount point; an unmounted one receives the image', async () => {
    const file = join(d.dir, 'loop-target.img');
    run('truncate', ['-s', '32M', file]);
    const loop = run('losetup', ['-f', '--show', file]).trim();
    const mnt = join(d.dir, 'loop-mnt');
    mkdirSync(mnt);
    try {
      run('mkfs.ext4', ['-q', '-F', loop]);
      run('mount', [loop, mnt]);
      try {
        await expect(client.call('backup.restore', { dir: set, point, target: loop })).rejects.toMatchObject({ errno: 'EBUSY', message: `${loop} is mounted at ${mnt}` });
      } finally {
        run('umount', [mnt]);
      }
      const job = await waitJob(client, (await client.call('backup.restore', { dir: set, point, target: loop })).jobId);
      expect(job.state, JSON.stringify(job.error)).toBe('done');
      expect(job.result).toMatchObject({ kind: 'restore', sha256: takeSha, bytes: 16 * MiB });
      const head = join(d.dir, 'loop-head.raw');
      run('dd', [`if=${loop}`, `of=${head}`, 'bs=1M', 'count=16', 'status=none']);
      expect(sha256OfFile(head)).toBe(takeSha);
    } finally {
      run('losetup', ['-d', loop]);
    }
  });
});
