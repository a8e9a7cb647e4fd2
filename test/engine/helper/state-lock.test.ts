import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lockStateDir } from '../../../engine/helper/state-lock.js';

describe('lockStateDir', () => {
  let base: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'bm-lock-'));
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('writes our pid and removes it on release', async () => {
    const lock = await lockStateDir(base);
    expect(readFileSync(join(base, 'helper.pid'), 'utf8').trim()).toBe(String(process.pid));
    await lock.release();
    expect(existsSync(join(base, 'helper.pid'))).toBe(false);
  });

  it('takes over the pid file of a helper that is gone', async () => {
    writeFileSync(join(base, 'helper.pid'), '999999999\n');
    const lock = await lockStateDir(base);
    expect(readFileSync(join(base, 'helper.pid'), 'utf8').trim()).toBe(String(process.pid));
    await lock.release();
  });

  it('refuses a state directory a live helper holds (EBUSY), but not one whose pid runs something else', async () => {
    // a process whose command line has "daemon" stands for a live helper
    const helper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)', 'daemon'], { stdio: 'ignore' });
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      writeFileSync(join(base, 'helper.pid'), `${helper.pid}\n`);
      await expect(lockStateDir(base, 100)).rejects.toMatchObject({ errno: 'EBUSY', message: expect.stringContaining(`another helper (pid ${helper.pid}) uses the state directory`) });
      // a helper that exits meanwhile (finishing its shutdown) hands over within the wait
      const waiting = lockStateDir(base, 10_000);
      setTimeout(() => helper.kill(), 300);
      const taken = await waiting;
      expect(readFileSync(join(base, 'helper.pid'), 'utf8').trim()).toBe(String(process.pid));
      await taken.release();
      writeFileSync(join(base, 'helper.pid'), `${other.pid}\n`); // a reused pid
      const lock = await lockStateDir(base, 100);
      await lock.release();
    } finally {
      helper.kill();
      other.kill();
    }
  });
});
