/**
 * One helper per state directory: helper.pid holds the pid of the helper using it.
 * A second helper on the same state directory (even with another socket) would
 * rewrite the image registry under the first and, at start, remove the storage files
 * of the first one's live snapshots, so it is refused (EBUSY). A pid file left by a
 * helper that was killed names a process that is gone (or is no helper), and is
 * taken over.
 */
import { readFileSync } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BlksnapError } from '../abi/errno.js';
import { errnoOf } from './fs-errors.js';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoOf(err) === 'EPERM';
  }
}

/** True when `pid` runs a blksnap-manager helper (its command line has "daemon"). */
function isHelper(pid: number): boolean {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return args.includes('daemon');
  } catch {
    return isAlive(pid); // no /proc: trust the pid
  }
}

export interface StateLock {
  release(): Promise<void>;
}

/**
 * Takes the state directory. A helper still holding it gets `waitMs` to go away
 * (one that is finishing its shutdown while its successor starts), then EBUSY.
 */
export async function lockStateDir(stateDir: string, waitMs = 3000): Promise<StateLock> {
  const file = join(stateDir, 'helper.pid');
  const deadline = Date.now() + waitMs;
  for (let attempt = 0; attempt < 3; ) {
    try {
      const handle = await open(file, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return {
        release: async () => {
          const text = await readFile(file, 'utf8').catch(() => '');
          if (Number(text.trim()) === process.pid) await unlink(file).catch(() => undefined);
        },
      };
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
    }
    const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid) && isHelper(pid)) {
      if (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      throw new BlksnapError(
        'EBUSY',
        `another helper (pid ${pid}) uses the state directory ${stateDir}; stop it first, or give this one another --state-dir (if no helper runs, remove ${file})`,
      );
    }
    await unlink(file).catch(() => undefined); // left by a helper that was killed
    attempt++;
  }
  throw new BlksnapError('EBUSY', `cannot lock the state directory ${stateDir} (${file} keeps reappearing)`);
}
