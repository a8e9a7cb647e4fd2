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
 *   thread (its own event loop, its own libc handle) that thaws on its own when the
 *   helper has not thawed within `watchdogMs` (a stuck event loop, a take that
 *   hangs).
 * - A file system frozen by someone else already (EBUSY) is left alone and never
 *   thawed by us; one that cannot be frozen (EOPNOTSUPP) is reported and skipped.
 */
import { closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
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

/** The watchdog: a thread that thaws `fds` after `ms` unless told to stop. Plain JS so it runs from sources and the build. */
const WATCHDOG_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const koffi = require(workerData.koffiPath);
const ioctl = koffi.load('libc.so.6').func('int ioctl(int fd, unsigned long request, void *arg)');
const timer = setTimeout(() => {
  const results = workerData.fds.map((fd) => (ioctl(fd, workerData.thaw, Buffer.alloc(4)) < 0 ? koffi.errno() : 0));
  parentPort.postMessage({ thawed: results });
  parentPort.close();
}, workerData.ms);
parentPort.on('message', () => {
  clearTimeout(timer);
  parentPort.close();
});
`;

class Watchdog {
  private readonly worker: Worker;
  fired = false;

  private constructor(worker: Worker) {
    this.worker = worker;
  }

  static async start(fds: number[], ms: number, log: (message: string) => void, mountPoints: string[]): Promise<Watchdog> {
    const koffiPath = fileURLToPath(import.meta.resolve('koffi'));
    const worker = new Worker(WATCHDOG_SOURCE, { eval: true, workerData: { fds, ms, thaw: FITHAW, koffiPath } });
    const dog = new Watchdog(worker);
    worker.on('message', (m: { thawed?: number[] }) => {
      if (!m.thawed) return;
      dog.fired = true;
      log(`watchdog: thawed ${mountPoints.join(', ')} after ${ms} ms: the helper had not thawed them (results ${m.thawed.join(', ')})`);
    });
    worker.on('error', (err) => log(`watchdog failed: ${err.message}`));
    await new Promise<void>((resolve, reject) => {
      worker.once('online', resolve);
      worker.once('error', reject);
    });
    return dog;
  }

  async stop(): Promise<void> {
    this.worker.postMessage('stop');
    await this.worker.terminate();
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
