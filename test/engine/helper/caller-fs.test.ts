import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, closeSync, constants as fsConstants, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CallerFs } from '../../../engine/helper/caller-fs.js';
import { createEmbeddedDriver } from '../../../engine/helper/driver-select.js';
import { HelperService } from '../../../engine/helper/service.js';
import { SettingsStore } from '../../../engine/helper/settings-store.js';
import type { Topic } from '../../../engine/protocol/schemas.js';
import type { CreatedFile } from '../../../engine/helper/caller-fs.js';
import { canUseLoop, isRoot } from '../../helpers/env.js';
import { embeddedBackends } from './kernel-backends.js';

const self = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
const noRecord = async (): Promise<void> => undefined;

function dirOf(f: CreatedFile): { dev: number; ino: number } {
  return { dev: f.dirDev, ino: f.dirIno };
}

describe('CallerFs: paths', () => {
  let base: string;
  const files = new CallerFs(self);
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'bm-callerfs-'));
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('creates a new private file and hands back its descriptor', async () => {
    const f = await files.createFile(join(base, 'diff'), 'difference storage', noRecord);
    writeFileSync(f.fd, 'through the descriptor');
    closeSync(f.fd);
    expect(readFileSync(join(base, 'diff'), 'utf8')).toBe('through the descriptor');
    expect(statSync(join(base, 'diff')).mode & 0o777).toBe(0o600);
    expect(statSync(join(base, 'diff')).ino).toBe(f.ino);
  });

  it('never reuses, follows or replaces: existing files, symlinks (last or inner component), directories', async () => {
    writeFileSync(join(base, 'exists'), 'keep me');
    symlinkSync(join(base, 'target'), join(base, 'dangling'));
    mkdirSync(join(base, 'real'));
    symlinkSync(join(base, 'real'), join(base, 'via'));
    mkdirSync(join(base, 'diffs'));
    const make = (p: string): Promise<CreatedFile> => files.createFile(p, 'difference storage', noRecord);
    await expect(make(join(base, 'exists'))).rejects.toMatchObject({ errno: 'EEXIST', message: expect.stringContaining('never reused or overwritten') });
    await expect(make(join(base, 'dangling'))).rejects.toMatchObject({ errno: 'ELOOP' });
    await expect(make(join(base, 'via', 'diff'))).rejects.toMatchObject({ errno: 'ELOOP' });
    await expect(make(join(base, 'diffs'))).rejects.toMatchObject({ errno: 'EISDIR', message: expect.stringContaining(`name a new file in it (e.g. ${join(base, 'diffs')}/diff0)`) });
    await expect(make(join(base, 'nowhere', 'diff'))).rejects.toMatchObject({ errno: 'ENOENT', message: expect.stringContaining(`the directory ${join(base, 'nowhere')} does not exist`) });
    await expect(make(join(base, 'exists', 'diff'))).rejects.toMatchObject({ errno: 'ENOTDIR' });
    await expect(make('relative/diff')).rejects.toMatchObject({ errno: 'EINVAL', message: expect.stringContaining('absolute') });
    await expect(make(`${base}/real/../diff`)).rejects.toMatchObject({ errno: 'EINVAL', message: expect.stringContaining('".."') });
    await expect(make('/')).rejects.toMatchObject({ errno: 'EINVAL' });
    expect(existsSync(join(base, 'target'))).toBe(false);
    expect(existsSync(join(base, 'real', 'diff'))).toBe(false);
    expect(readFileSync(join(base, 'exists'), 'utf8')).toBe('keep me');
  });

  it('creates nothing on /proc or /sys, nor under /dev', async () => {
    for (const p of ['/proc/diff', '/sys/diff', '/dev/shm/diff']) {
      await expect(files.createFile(p, 'difference storage', noRecord), p).rejects.toMatchObject({ errno: 'EPERM' });
    }
    expect(existsSync('/dev/shm/diff')).toBe(false);
  });

  it('opens only regular files (and block devices) for registration, never through a symlink or on /proc or /sys', () => {
    writeFileSync(join(base, 'img'), Buffer.alloc(4096));
    symlinkSync(join(base, 'img'), join(base, 'link'));
    const ok = files.openExisting(join(base, 'img'), 'image', { write: true });
    expect(ok).toMatchObject({ isBlockDevice: false, size: 4096, ino: statSync(join(base, 'img')).ino });
    closeSync(ok.fd);
    expect(() => files.openExisting(join(base, 'link'), 'image', { write: true })).toThrow(/ELOOP/);
    expect(() => files.openExisting('/proc/self/status', 'image', { write: false })).toThrow(/ELOOP/);
    expect(() => files.openExisting('/proc/version', 'image', { write: false })).toThrow(/EPERM: image: \/proc\/version is on proc/);
    expect(() => files.openExisting('/sys/kernel/profiling', 'image', { write: false })).toThrow(/EPERM: image: .* is on sysfs/);
    expect(() => files.openExisting('/dev/null', 'image', { write: false })).toThrow(/EINVAL: image: \/dev\/null is neither a regular file nor a block device/);
    expect(() => files.openExisting(base, 'image', { write: false })).toThrow(/EINVAL: .*neither a regular file/);
  });

  it('removes a file only while it is the one created, in the directory it was created in', async () => {
    const f = await files.createFile(join(base, 'diff'), 'difference storage', noRecord);
    closeSync(f.fd);
    const other = { dev: f.dev, ino: f.ino + 1 };
    expect(files.removeIfSame(join(base, 'diff'), other, dirOf(f))).toBe(false);
    expect(files.removeIfSame(join(base, 'diff'), f, { dev: f.dirDev, ino: f.dirIno + 1 })).toBe(false);
    expect(existsSync(join(base, 'diff'))).toBe(true);
    expect(files.removeIfSame(join(base, 'diff'), f, dirOf(f))).toBe(true);
    expect(existsSync(join(base, 'diff'))).toBe(false);
    expect(files.removeIfSame(join(base, 'diff'), f, dirOf(f))).toBe(false);
  });
});

/** Users for the root tests: A works with the helper, B is someone else. */
const A = 4711;
const B = 4712;
const GROUP = 4799;

describe.skipIf(!isRoot)('[root] CallerFs: the rights of the helper\'s user, not root\'s', () => {
  let base: string;
  const asA = new CallerFs({ uid: A, gid: A, groups: [A, GROUP] });
  const dirs: Record<string, string> = {};

  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'bm-rights-'));
    chmodSync(base, 0o755);
    const mk = (name: string, uid: number, gid: number, mode: number): string => {
      const p = join(base, name);
      mkdirSync(p);
      chownSync(p, uid, gid);
      chmodSync(p, mode);
      dirs[name] = p;
      return p;
    };
    mk('a', A, A, 0o700);
    mk('b', B, B, 0o755);
    mk('root', 0, 0, 0o755);
    mk('group', 0, GROUP, 0o770);
    writeFileSync(join(dirs.root!, 'root.img'), Buffer.alloc(4096));
    chmodSync(join(dirs.root!, 'root.img'), 0o644);
    writeFileSync(join(dirs.b!, 'b.img'), Buffer.alloc(4096));
    chownSync(join(dirs.b!, 'b.img'), B, B);
    chmodSync(join(dirs.b!, 'b.img'), 0o644);
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('creates files only where the user may, owned by the user', async () => {
    const mine = await asA.createFile(join(dirs.a!, 'diff'), 'difference storage', noRecord);
    closeSync(mine.fd);
    expect(statSync(join(dirs.a!, 'diff'))).toMatchObject({ uid: A, gid: A });
    const viaGroup = await asA.createFile(join(dirs.group!, 'diff'), 'difference storage', noRecord);
    closeSync(viaGroup.fd);
    expect(statSync(join(dirs.group!, 'diff')).uid).toBe(A);
    for (const d of ['root', 'b']) {
      await expect(asA.createFile(join(dirs[d]!, 'diff'), 'difference storage', noRecord), d).rejects.toMatchObject({ errno: 'EACCES' });
      expect(existsSync(join(dirs[d]!, 'diff'))).toBe(false);
    }
  });

  it('registers (opens read-write) only files the user may read and write', () => {
    expect(() => asA.openExisting(join(dirs.root!, 'root.img'), 'image', { write: true })).toThrow(/EACCES/);
    expect(() => asA.openExisting(join(dirs.b!, 'b.img'), 'image', { write: true })).toThrow(/EACCES/);
    writeFileSync(join(dirs.a!, 'a.img'), Buffer.alloc(4096));
    chownSync(join(dirs.a!, 'a.img'), A, A);
    const opened = asA.openExisting(join(dirs.a!, 'a.img'), 'image', { write: true });
    closeSync(opened.fd);
  });

  it('removes nothing in another user\'s directory, even a file it knows exactly', () => {
    const st = statSync(join(dirs.b!, 'b.img'));
    const dir = statSync(dirs.b!);
    expect(() => asA.removeIfSame(join(dirs.b!, 'b.img'), st, dir)).toThrow(/EACCES/);
    expect(existsSync(join(dirs.b!, 'b.img'))).toBe(true);
  });

  it.skipIf(!canUseLoop)('a block device under /dev opens for the helper (administrators only); other device nodes do not', () => {
    const img = join(dirs.root!, 'root.img');
    const loop = execFileSync('losetup', ['--find', '--show', img]).toString().trim();
    try {
      const dev = asA.openExisting(loop, 'image', { write: true });
      closeSync(dev.fd);
      expect(dev).toMatchObject({ isBlockDevice: true, rdev: statSync(loop).rdev });
      expect(() => asA.openExisting('/dev/zero', 'image', { write: true })).toThrow(/EINVAL: image: \/dev\/zero is neither/);
    } finally {
      execFileSync('losetup', ['-d', loop]);
    }
  });
});

/** Starts the swapper fixture; resolves when it is swapping. */
async function startSwapper(paths: string[]): Promise<{ stop(): Promise<number> }> {
  const fixture = resolve(import.meta.dirname, 'fixtures/rename-exchange.mjs');
  const child = spawn(process.execPath, [fixture, ...paths], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((res, rej) => {
    child.once('exit', (code) => rej(new Error(`swapper exited ${code}`)));
    const poll = (): void => (out.includes('ready') ? res() : void setTimeout(poll, 10));
    poll();
  });
  return {
    stop: () =>
      new Promise<number>((res) => {
        child.removeAllListeners('exit');
        child.once('exit', () => res(Number(out.replace('ready', '').trim())));
        child.kill('SIGTERM');
      }),
  };
}

describe.skipIf(!isRoot)('[root] the RENAME_EXCHANGE race', () => {
  const TRIES = 1000;
  let base: string;
  let user: string;
  let victim: string;

  beforeEach(() => {
    // /tmp/x (the user's) holds a: the user's directory, b: a root directory, c: a symlink to it
    base = mkdtempSync(join(tmpdir(), 'bm-race-'));
    chmodSync(base, 0o755);
    chownSync(base, A, A);
    user = join(base, 'a');
    victim = join(base, 'b');
    mkdirSync(user);
    chownSync(user, A, A);
    mkdirSync(victim, 0o755);
    symlinkSync(victim, join(base, 'c'));
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  /** Runs `create` TRIES times while a/b and a/c are swapped; returns where files landed. */
  async function race(create: (path: string) => Promise<void>): Promise<{ created: number; refused: number; inVictim: number; swaps: number }> {
    const swapper = await startSwapper([user, victim, join(base, 'c')]);
    let created = 0;
    let refused = 0;
    let swaps: number;
    try {
      for (let i = 0; i < TRIES; i++) {
        try {
          await create(join(user, `diff-${i}`));
          created++;
        } catch {
          refused++;
        }
      }
    } finally {
      swaps = await swapper.stop();
    }
    // after the swapper stopped, a and b may be either way round: count files in the root-owned one
    const rootOwned = [user, victim].find((p) => statSync(p).uid === 0)!;
    return { created, refused, inVictim: readdirSync(rootOwned).length, swaps };
  }

  it('is never won against the helper: 1,000 creations land only in the user\'s directory', async () => {
    const asA = new CallerFs({ uid: A, gid: A, groups: [A] });
    const result = await race(async (path) => {
      const f = await asA.createFile(path, 'difference storage', noRecord);
      closeSync(f.fd);
    });
    console.log(`RENAME_EXCHANGE race, caller's rights: ${JSON.stringify(result)}`);
    expect(result.inVictim).toBe(0);
    // the race really ran both ways: some creations were refused, some succeeded
    expect(result.swaps).toBeGreaterThan(TRIES);
    expect(result.refused).toBeGreaterThan(0);
    expect(result.created).toBeGreaterThan(0);
  });

  it('is never won against the helper\'s snapshotCreate: storage lands only in the user\'s directory, and is removed from there', async () => {
    const engine = await createEmbeddedDriver();
    const settings = new SettingsStore(base);
    const service = new HelperService(
      embeddedBackends(engine, { owner: { uid: A, gid: A, groups: [A] } }),
      settings,
      () => undefined,
    );
    const ctx = { subscriptions: new Set<Topic>() };
    try {
      const result = await race(async (path) => {
        const { id } = await service.handlers.snapshotCreate({ diffStoragePath: path, limitSectors: 2048 }, ctx);
        await service.handlers.snapshotDestroy({ id }, ctx);
      });
      console.log(`RENAME_EXCHANGE race, helper snapshotCreate: ${JSON.stringify(result)}`);
      expect(result.inVictim).toBe(0);
      expect(result.refused).toBeGreaterThan(0);
      expect(result.created).toBeGreaterThan(0);
      // every storage file was removed again at destroy, from the user's directory
      const userOwned = [user, victim].find((p) => statSync(p).uid === A)!;
      expect(readdirSync(userOwned)).toEqual([]);
    } finally {
      await service.stopPumps();
      await engine.close();
    }
  });

  it('would be won by a plain root open of the path (the check has teeth)', async () => {
    const result = await race(async (path) => {
      closeSync(openSync(path, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_RDWR | fsConstants.O_NOFOLLOW, 0o600));
    });
    expect(result.inVictim).toBeGreaterThan(0);
  });
});
