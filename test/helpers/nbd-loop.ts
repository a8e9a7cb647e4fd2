/**
 * Turns an NBD export into a loop block device the way an administrator would:
 * nbdfuse exposes the export as a file in a FUSE mount, losetup makes a loop
 * device of that file. Needs root, /dev/fuse, /dev/loop-control and nbdfuse.
 *
 *   const loop = await attachNbdLoop(server.uriFor('disk1'));
 *   try { await loop.mount(['-o', 'ro,noload']); ... } finally { await loop.cleanup(); }
 *
 * cleanup() unmounts, detaches the loop device, unmounts the FUSE file and stops
 * nbdfuse, each step attempted even when an earlier one failed.
 *
 * Every external command runs asynchronously: the NBD server usually lives in
 * the same process and must keep answering while they run.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface NbdLoop {
  /** /dev/loopN */
  readonly loopDevice: string;
  /** The FUSE file nbdfuse serves the export as. */
  readonly fuseFile: string;
  /** Mounts the loop device on a fresh directory (unmounted by cleanup) and returns it. */
  mount(args?: string[]): Promise<string>;
  /** Unmounts what mount() mounted (cleanup does it too). */
  unmount(): Promise<void>;
  cleanup(): Promise<void>;
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string, failed: () => string | null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    const failure = failed();
    if (failure !== null) throw new Error(`${what}: ${failure}`);
    if (Date.now() > deadline) throw new Error(`${what}: timed out after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function attachNbdLoop(uri: string, options: { readOnly?: boolean; timeoutMs?: number } = {}): Promise<NbdLoop> {
  const readOnly = options.readOnly ?? false;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const dir = await mkdtemp(join(tmpdir(), 'nbd-loop-'));
  const fuseDir = join(dir, 'fuse');
  const fuseFile = join(fuseDir, 'disk');
  const pidFile = join(dir, 'nbdfuse.pid');
  await mkdir(fuseDir);

  let child: ChildProcess | null = null;
  let stderr = '';
  let loopDevice: string | null = null;
  let fuseMounted = false;
  const mounts: string[] = [];

  const unmount = async (): Promise<void> => {
    while (mounts.length > 0) {
      const target = mounts[mounts.length - 1] as string;
      try {
        await run('umount', [target]);
      } catch {
        await run('umount', ['-l', target]).catch(() => undefined);
      }
      mounts.pop();
    }
  };

  const cleanup = async (): Promise<void> => {
    await unmount().catch(() => undefined);
    if (loopDevice !== null) {
      await run('losetup', ['-d', loopDevice]).catch(() => undefined);
      loopDevice = null;
    }
    if (fuseMounted || existsSync(fuseFile)) {
      await run('fusermount3', ['-u', fuseDir]).catch(() => run('fusermount3', ['-u', '-z', fuseDir]).catch(() => undefined));
      fuseMounted = false;
    }
    if (child !== null) {
      const c = child;
      const gone = exited(c);
      const timer = setTimeout(() => c.kill('SIGKILL'), 3000);
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
      await gone;
      clearTimeout(timer);
      child = null;
    }
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };

  try {
    const args = [...(readOnly ? ['-r'] : []), '-P', pidFile, fuseFile, uri];
    const proc = spawn('nbdfuse', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    proc.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    let spawnError: string | null = null;
    proc.once('error', (err) => {
      spawnError = err.message;
    });
    await waitFor(() => existsSync(pidFile) && existsSync(fuseFile), timeoutMs, `nbdfuse ${uri}`, () => {
      if (spawnError !== null) return spawnError;
      if (proc.exitCode !== null) return `exited with ${proc.exitCode}: ${stderr.trim()}`;
      return null;
    });
    fuseMounted = true;
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`nbdfuse wrote a bad pid file: ${pid}`);

    const { stdout } = await run('losetup', ['--find', '--show', ...(readOnly ? ['--read-only'] : []), fuseFile]);
    loopDevice = stdout.trim();
    if (!loopDevice.startsWith('/dev/loop')) throw new Error(`losetup printed ${JSON.stringify(stdout)}`);
  } catch (err) {
    await cleanup();
    throw err;
  }

  const device = loopDevice;
  return {
    loopDevice: device,
    fuseFile,
    async mount(args: string[] = []): Promise<string> {
      const target = join(dir, `mnt${mounts.length}`);
      await mkdir(target, { recursive: true });
      await run('mount', [...args, device, target]);
      mounts.push(target);
      return target;
    },
    unmount,
    cleanup,
  };
}
