/**
 * The embedded engine's take freezes the file system of a device mounted on this
 * machine through its NBD export: a real helper, its engine device with ext4,
 * exported, attached with nbdfuse and a loop device, mounted; a file written and
 * fsynced, another left in the page cache; take (no --freeze: the helper finds the
 * mount by the chain device -> export -> nbdfuse -> loop -> mountinfo). The image,
 * read back through its own export, is a clean ext4 (e2fsck -fn) holding both
 * files complete (sha256). Also: `--freeze` for what cannot be detected, with the
 * caller's rights, and its refusals.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../engine/cli/main.js';
import type { HelperClient } from '../../../engine/protocol/client.js';
import { canUseFuse, canUseLoop, hasCommand } from '../../helpers/env.js';
import { connectClient, spawnDaemon } from './spawn-daemon.js';
import type { SpawnedDaemon } from './spawn-daemon.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const usable = canUseLoop && canUseFuse && ['nbdfuse', 'mkfs.ext4', 'e2fsck', 'debugfs', 'nbdcopy', 'losetup'].every(hasCommand);

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.skipIf(!usable)('[root][loop][fuse] take freezes an engine device mounted through nbdfuse and a loop device', () => {
  let d: SpawnedDaemon;
  let client: HelperClient;
  let fuse: ChildProcess;
  let fuseDir: string;
  let loop = '';
  let mnt: string;
  const synced = randomBytes(3 * MiB + 123);
  const cached = randomBytes(MiB + 7);

  beforeAll(async () => {
    d = await spawnDaemon();
    client = await connectClient(d.socketPath);
    const image = await client.call('images.create', { path: join(d.dir, 'disk.img'), size: 64 * MiB, name: 'disk1' });
    fuseDir = join(d.dir, 'fuse');
    mkdirSync(fuseDir);
    fuse = spawn('nbdfuse', [fuseDir, image.nbdUri ?? ''], { stdio: 'ignore' });
    await waitFor(() => existsSync(join(fuseDir, 'nbd')), 'nbdfuse');
    loop = (await run('losetup', ['--find', '--show', join(fuseDir, 'nbd')])).stdout.trim();
    await run('mkfs.ext4', ['-q', '-F', loop]);
    mnt = join(d.dir, 'mnt');
    mkdirSync(mnt);
    await run('mount', [loop, mnt]);
  }, 60_000);

  afterAll(async () => {
    if (mnt && existsSync(mnt)) await run('umount', [mnt]).catch(() => undefined);
    if (loop) await run('losetup', ['-d', loop]).catch(() => undefined);
    if (fuseDir) await run('fusermount3', ['-u', fuseDir]).catch(() => undefined);
    fuse?.kill();
    client?.close();
    await d?.cleanup();
  }, 60_000);

  it('a synced file and one still in the page cache are complete in a clean image; the log says how long writers waited', async () => {
    const fd = openSync(join(mnt, 'synced.bin'), 'w');
    writeSync(fd, synced);
    fsyncSync(fd);
    closeSync(fd);
    writeFileSync(join(mnt, 'cached.bin'), cached); // no fsync: in the page cache at the take

    const { id } = await client.call('snapshotCreate', { diffStoragePath: join(d.dir, 'diff'), limitSectors: (64 * MiB) / 512, devices: ['disk1'] });
    const taken = await client.call('snapshotTake', { id });
    expect(taken.frozen?.map((f) => [f.mountPoint, f.how])).toEqual([[mnt, 'detected']]);
    // written after the take: not in the image
    writeFileSync(join(mnt, 'later.bin'), randomBytes(MiB));

    const info = await client.call('snapshotInfo', { device: 'disk1' });
    const raw = join(d.dir, 'image.raw');
    await run('nbdcopy', [info.nbdUri ?? '', raw]);
    // clean: no journal to replay, nothing to fix
    await run('e2fsck', ['-fn', raw]);
    const cat = (name: string): Buffer => execFileSync('debugfs', ['-R', `cat /${name}`, raw], { maxBuffer: 16 * MiB, stdio: ['ignore', 'pipe', 'ignore'] });
    expect(sha256(cat('synced.bin'))).toBe(sha256(synced));
    expect(sha256(cat('cached.bin'))).toBe(sha256(cached));
    expect(execFileSync('debugfs', ['-R', 'ls -l /', raw], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).not.toMatch(/later\.bin/);
    expect(d.log()).toMatch(new RegExp(`snapshot ${id}: froze ${mnt} \\(nbdfuse \\d+ -> ${fuseDir}/nbd -> loop\\d+\\) around the take: writers waited \\d+ ms`));
    await client.call('snapshotDestroy', { id });
  }, 120_000);

  it('--freeze of a path that is not a mount point is refused, nothing is taken', async () => {
    const { id } = await client.call('snapshotCreate', { diffStoragePath: join(d.dir, 'diff2'), limitSectors: (64 * MiB) / 512, devices: ['disk1'] });
    mkdirSync(join(mnt, 'sub'), { recursive: true });
    await expect(client.call('snapshotTake', { id, freeze: [join(mnt, 'sub')] })).rejects.toThrow(/is not a mount point/);
    await expect(client.call('snapshotTake', { id, freeze: [join(d.dir, 'missing')] })).rejects.toThrow(/no such file or directory/);
    const { snapshots } = await client.call('snapshots.list', {});
    expect(snapshots.find((s) => s.id === id)?.taken).toBe(false);
    // asked and detected together: frozen once; through the CLI, which says so on stderr
    let out = '';
    let err = '';
    const code = await main(['snapshot_take', '-i', id, '--freeze', mnt, '--socket', d.socketPath], { stdout: (t) => (out += t), stderr: (t) => (err += t), isTty: false });
    expect({ code, out }).toEqual({ code: 0, out: '' });
    expect(err).toMatch(new RegExp(`^froze ${mnt} \\(asked\\): writers waited \\d+ ms\n$`));
    await client.call('snapshotDestroy', { id });
    expect(readFileSync(join(mnt, 'synced.bin')).equals(synced)).toBe(true);
  }, 60_000);
});
