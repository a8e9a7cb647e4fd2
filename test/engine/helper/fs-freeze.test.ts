/**
 * Freezing file systems around a take (engine/helper/fs-freeze.ts) on real ext4
 * mounts of loop devices: FIFREEZE really holds writers until the thaw, a failing
 * take still thaws, the watchdog thread thaws when the helper's own thread is stuck,
 * a killed helper's freeze is thawed by the watchdog process, and a file system
 * frozen by someone else is left frozen (never thawed by us).
 */
import { execFileSync, spawn } from 'node:child_process';
import { constants, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freezeAround } from '../../../engine/helper/fs-freeze.js';
import type { FreezeTarget } from '../../../engine/helper/fs-freeze.js';
import { canUseLoop, hasCommand } from '../../helpers/env.js';
import { REPO } from './spawn-daemon.js';

const MiB = 1024 * 1024;
const usable = canUseLoop && hasCommand('mkfs.ext4') && hasCommand('fsfreeze');

/** Whether a write to `mnt` completes within `ms` (a frozen file system holds it). */
function writeCompletes(mnt: string, name: string, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', 'echo x > "$1"', 'sh', join(mnt, name)], { stdio: 'ignore' });
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function target(mnt: string): FreezeTarget {
  return { mountPoint: mnt, fd: openSync(mnt, constants.O_RDONLY | constants.O_DIRECTORY), how: 'asked' };
}

describe.skipIf(!usable)('[root][loop] freezing a mounted file system around a take', () => {
  let dir: string;
  let loop: string;
  let mnt: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'bm-freeze-'));
    const img = join(dir, 'fs.img');
    writeFileSync(img, Buffer.alloc(32 * MiB));
    execFileSync('mkfs.ext4', ['-q', '-F', img]);
    loop = execFileSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).trim();
    mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    execFileSync('mount', [loop, mnt]);
  });

  afterAll(() => {
    if (!dir) return;
    try {
      execFileSync('umount', [mnt]);
    } finally {
      execFileSync('losetup', ['-d', loop]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('holds writers while the take runs and lets them go after; reports the time frozen', async () => {
    const logs: string[] = [];
    const { result, frozen } = await freezeAround(
      [target(mnt)],
      async () => {
        // a writer started during the take waits for the thaw
        return writeCompletes(mnt, 'during', 500);
      },
      (m) => logs.push(m),
    );
    expect(result).toBe(false);
    expect(frozen).toHaveLength(1);
    expect(frozen[0]).toMatchObject({ mountPoint: mnt, how: 'asked' });
    expect(frozen[0]!.frozenMs).toBeGreaterThanOrEqual(500);
    expect(await writeCompletes(mnt, 'after', 10_000)).toBe(true);
    expect(existsSync(join(mnt, 'after'))).toBe(true);
  });

  it('thaws when the take fails, and passes its error on', async () => {
    await expect(
      freezeAround([target(mnt)], async () => {
        throw new Error('take failed: ENODEV');
      }, () => undefined),
    ).rejects.toThrow(/take failed: ENODEV/);
    expect(await writeCompletes(mnt, 'after-failure', 10_000)).toBe(true);
  });

  it('the watchdog process thaws when the helper thread is stuck (here: blocked waiting for a writer)', async () => {
    const logs: string[] = [];
    const { result } = await freezeAround(
      [target(mnt)],
      async () => {
        // blocks this thread until the writer is done; only the watchdog can let it finish
        execFileSync('sh', ['-c', 'echo x > "$1"', 'sh', join(mnt, 'stuck')], { timeout: 20_000 });
        return 'done';
      },
      (m) => logs.push(m),
      { watchdogMs: 300 },
    );
    expect(result).toBe('done');
    expect(logs.some((l) => /watchdog: thawed .* after 300 ms/.test(l))).toBe(true);
    expect(await writeCompletes(mnt, 'after-watchdog', 10_000)).toBe(true);
  });

  it('a helper killed while the file system is frozen: the watchdog process thaws it at once', async () => {
    const script = `
      const { openSync, constants } = await import('node:fs');
      const { freezeAround } = await import('./engine/helper/fs-freeze.ts');
      const mnt = process.argv[1];
      const fd = openSync(mnt, constants.O_RDONLY | constants.O_DIRECTORY);
      await freezeAround([{ mountPoint: mnt, fd, how: 'asked' }], async () => {
        console.log('frozen');
        await new Promise(() => {}); // a take that never ends
      }, () => {}, { watchdogMs: 600000 });
    `;
    const helper = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, mnt], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      helper.stdout?.on('data', (d: Buffer) => (d.toString().includes('frozen') ? resolve() : undefined));
      helper.once('exit', (code) => reject(new Error(`the helper exited early (${code})`)));
    });
    expect(await writeCompletes(mnt, 'while-frozen', 500)).toBe(false);
    helper.kill('SIGKILL');
    expect(await writeCompletes(mnt, 'after-kill', 10_000)).toBe(true);
  });

  it('an asked file system frozen by someone else is refused with EBUSY and stays frozen', async () => {
    execFileSync('fsfreeze', ['-f', mnt]);
    try {
      let ran = false;
      await expect(
        freezeAround([target(mnt)], async () => {
          ran = true;
        }, () => undefined),
      ).rejects.toThrow(/cannot freeze .*: it is frozen already \(by another program; left to it\)/);
      expect(ran).toBe(false);
      expect(await writeCompletes(mnt, 'still-frozen', 500)).toBe(false);
    } finally {
      execFileSync('fsfreeze', ['-u', mnt]);
    }
  });
});

describe('freezeAround without targets', () => {
  it('just runs the take', async () => {
    expect(await freezeAround([], async () => 42, () => undefined)).toEqual({ result: 42, frozen: [] });
  });
});
