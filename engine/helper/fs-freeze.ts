/**
 * Freezing file systems around a take (FIFREEZE / FITHAW ioctls on a descriptor of
 * the mount point, as fsfreeze(8) does), so what an application wrote and synced
 * before the take is complete in the snapshot, as the kernel module's take freezes
 * the file systems of its devices.
 *
 * - FIFREEZE writes the file system's dirty data out first; for an engine device
 *   mounted through nbdfuse and a loop device, those writes come back to this very
 *   process's NBD server, so the ioctl runs on koffi's worker thread, never on the
 *   event loop.
 * - The thaw is guaranteed: in `finally`, whatever the take did, and by a watchdog
 *   process that thaws on its own when the helper has not thawed within
 *   `watchdogMs` (a stuck event loop, a take that hangs), or at once when the
 *   helper is killed meanwhile.
 * - A file system frozen by someone else already (EBUSY) is left alone and never
 *   thawed by us; one that cannot be frozen (EOPNOTSUPP) is reported and skipped.
 */
import { closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import koffi from 'koffi';
import { BlksnapError, errnoName } from '../abi/errno.js';
import { loadIoctl } from '../kernel/koffi-ioctl-layer.js';

/** _IOWR('X', 119, int) and _IOWR('X', 120, int) from linux/fs.h. */
export const FIFREEZE = 0xc0045877;
export const FITHAW = 0xc0045878;

/** How long a file system may stay frozen before the watchdog thaws it. */
export const DEFAULT_WATCHDOG_MS = 10_000;

export interface FreezeTarget {
  mountPoint: string;
  /** A descriptor of the mount point (O_RDONLY | O_DIRECTORY); closed by freezeAround. */
  fd: number;
  /** "detected" (the engine device's mount) or "asked" (--freeze). */
  how: 'detected' | 'asked';
  /** For the log: how it was found. */
  via?: string;
}

export interface FreezeReport {
  mountPoint: string;
  how: 'detected' | 'asked';
  /** Milliseconds between the end of FIFREEZE and the end of FITHAW: how long writers waited. */
  frozenMs: number;
  /** Milliseconds FIFREEZE took (writing out the dirty data). */
  freezeMs: number;
}

/** One ioctl with no argument on koffi's worker thread; resolves with the errno name, or null on success. */
function ioctlAsync(fd: number, request: number): Promise<string | null> {
  const fn = loadIoctl();
  return new Promise((resolve) => {
    fn.async(fd, request, Buffer.alloc(4), (err, res) => {
      if (err) resolve('EIO');
      else resolve(res < 0 ? (errnoName(koffi.errno()) ?? `errno ${koffi.errno()}`) : null);
    });
  });
}

/**
 * The watchdog: a small child process (plain JS, so it runs the same from sources and
 * from the build) that holds the mount points' descriptors (its fds 3, 4, ...) and
 * thaws them itself after `ms`, or at once when the helper goes away (its stdin
 * closes: the helper was killed), unless the helper says "stop" first. Being its
 * own process, it works while the helper's event loop is stuck, and after the
 * helper is gone.
 */
const WATCHDOG_SOURCE = `
const { writeSync } = require('node:fs');
const koffi = require(process.argv[1]);
const ioctl = koffi.load('libc.so.6').func('int ioctl(int fd, unsigned long request, void *arg)');
const count = Number(process.argv[2]);
const thaw = Number(process.argv[4]);
let over = false;
function thawAll(why) {
  if (over) return;
  over = true;
  const results = [];
  for (let i = 0; i < count; i++) results.push(ioctl(3 + i, thaw, Buffer.alloc(4)) < 0 ? koffi.errno() : 0);
  try { writeSync(1, JSON.stringify({ thawed: results, why }) + '\\n'); } catch {}
  process.exit(0);
}
setTimeout(() => thawAll('timeout'), Number(process.argv[3]));
process.stdin.on('data', (d) => { if (String(d).includes('stop')) { over = true; process.exit(0); } });
process.stdin.on('end', () => thawAll('the helper went away'));
writeSync(1, 'ready\\n');
`;

class Watchdog {
  private constructor(private readonly child: ChildProcess) {}

  static async start(fds: number[], ms: number, log: (message: string) => void, mountPoints: string[]): Promise<Watchdog> {
    const koffiPath = fileURLToPath(import.meta.resolve('koffi'));
    const child = spawn(process.execPath, ['-e', WATCHDOG_SOURCE, koffiPath, String(fds.length), String(ms), String(FITHAW)], {
      stdio: ['pipe', 'pipe', 'ignore', ...fds],
    });
    let output = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => {
        output += d.toString();
        if (output.includes('ready\n')) resolve();
        const line = /\{"thawed".*\}/.exec(output);
        if (line) {
          log(`watchdog: thawed ${mountPoints.join(', ')} after ${ms} ms: the helper had not thawed them (${line[0]})`);
          output = '';
        }
      });
      child.once('error', reject);
      child.once('exit', (code) => reject(new BlksnapError('EIO', `the freeze watchdog did not start (exit ${code})`)));
    });
    child.removeAllListeners('exit');
    child.on('error', (err) => log(`watchdog failed: ${err.message}`));
    // The watchdog may have thawed and exited just before stop() writes to it: that
    // write fails with EPIPE, which must not become an uncaught error of the helper.
    child.stdin?.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') log(`watchdog: ${err.message}`);
    });
    return new Watchdog(child);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin?.end('stop\n');
    await exited;
  }
}

/**
 * Runs `fn` with the file systems of `targets` frozen; thaws them afterwards in every
 * case (and closes their descriptors). An "asked" target that cannot be frozen fails
 * the whole call before `fn` runs (nothing stays frozen); a detected one is logged
 * and skipped.
 */
export async function freezeAround<T>(
  targets: FreezeTarget[],
  fn: () => Promise<T>,
  log: (message: string) => void,
  options: { watchdogMs?: number } = {},
): Promise<{ result: T; frozen: FreezeReport[] }> {
  if (targets.length === 0) return { result: await fn(), frozen: [] };
  const frozen: { target: FreezeTarget; freezeMs: number; at: number }[] = [];
  let dog: Watchdog | null = null;
  try {
    dog = await Watchdog.start(
      targets.map((t) => t.fd),
      options.watchdogMs ?? DEFAULT_WATCHDOG_MS,
      log,
      targets.map((t) => t.mountPoint),
    );
    for (const target of targets) {
      const started = performance.now();
      const failure = await ioctlAsync(target.fd, FIFREEZE);
      if (failure === null) {
        frozen.push({ target, freezeMs: performance.now() - started, at: performance.now() });
        continue;
      }
      const why =
        failure === 'EBUSY'
          ? 'it is frozen already (by another program; left to it)'
          : failure === 'EOPNOTSUPP'
            ? 'its file system cannot be frozen'
            : failure === 'EPERM'
              ? 'freezing needs administrator rights (the helper does not run as root)'
              : failure;
      if (target.how === 'asked') throw new BlksnapError(failure === 'EBUSY' ? 'EBUSY' : failure === 'EPERM' ? 'EPERM' : 'EIO', `cannot freeze ${target.mountPoint}: ${why}`);
      log(`not freezing ${target.mountPoint} for the take: ${why}`);
    }
    const result = await fn();
    return { result, frozen: await thawAll(frozen, log) };
  } finally {
    // a failure anywhere: thaw what was frozen (a second thaw after success is EINVAL, ignored)
    await thawAll(frozen, log);
    await dog?.stop().catch(() => undefined);
    for (const t of targets) {
      try {
        closeSync(t.fd);
      } catch {
        // closed already
      }
    }
  }
}

/** Thaws every frozen target (once), and reports how long each stayed frozen. */
async function thawAll(frozen: { target: FreezeTarget; freezeMs: number; at: number }[], log: (message: string) => void): Promise<FreezeReport[]> {
  const reports: FreezeReport[] = [];
  for (const f of frozen.splice(0)) {
    const failure = await ioctlAsync(f.target.fd, FITHAW);
    const frozenMs = Math.round(performance.now() - f.at);
    // EINVAL: not frozen any more (the watchdog thawed it)
    if (failure !== null && failure !== 'EINVAL') log(`cannot thaw ${f.target.mountPoint}: ${failure}; run: fsfreeze -u ${f.target.mountPoint}`);
    reports.push({ mountPoint: f.target.mountPoint, how: f.target.how, frozenMs, freezeMs: Math.round(f.freezeMs) });
  }
  return reports;
}
