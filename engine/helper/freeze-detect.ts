/**
 * Where an embedded-engine device is mounted on this machine: the chain
 * engine device -> its NBD export (the helper's Unix socket, export = device name)
 * -> an nbdfuse process serving that export as a file -> a loop device over that
 * file -> /proc/self/mountinfo (the loop device, or one of its partitions).
 * The take freezes those file systems (fs-freeze.ts), as the kernel module freezes
 * the file systems of the devices it takes.
 *
 * nbdfuse is recognised by its command line (`nbdfuse MOUNTPOINT[/FILENAME] URI`,
 * the URI `nbd+unix:///EXPORT?socket=PATH`): its file is MOUNTPOINT/FILENAME, or
 * MOUNTPOINT/nbd when MOUNTPOINT is a directory, or MOUNTPOINT itself ("naked" mount
 * over a regular file). What cannot be recognised (nbd-client, qemu-nbd --connect,
 * a mount on another machine) is named with `snapshot_take --freeze MOUNTPOINT`.
 */
import { closeSync, constants as fsConstants, openSync, readFileSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BlksnapError } from '../abi/errno.js';
import { parseMountinfoEntries, readSystemUsage, usesOf } from '../devices/device-holders.js';
import type { CallerFs } from './caller-fs.js';
import type { FreezeTarget } from './fs-freeze.js';
import type { UsageSources } from '../devices/device-holders.js';

export interface NbdfuseProcess {
  pid: number;
  /** The file nbdfuse presents (candidates: the path as given, and PATH/nbd). */
  files: string[];
  /** The export it serves and the Unix socket of the server, from its URI. */
  exportName: string;
  socket: string;
}

export interface DetectedMount {
  /** The engine device (its export name). */
  device: string;
  mountPoint: string;
  /** How it was found, for the log: "nbdfuse 1234 -> /mnt/nbd/nbd -> loop3". */
  via: string;
}

const NBDFUSE_VALUE_OPTIONS = new Set(['-C', '--connections', '-o', '-P', '--pidfile']);

/** The nbdfuse file and URI of one command line (argv, NUL-split), or null when not a Unix-socket URI form. */
export function parseNbdfuseArgs(argv: string[]): Omit<NbdfuseProcess, 'pid'> | null {
  const positional: string[] = [];
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (NBDFUSE_VALUE_OPTIONS.has(arg)) {
      i++;
      continue;
    }
    if (arg.startsWith('-') && positional.length === 0) continue;
    positional.push(arg);
  }
  const [target, uri] = positional;
  if (!target || !uri || positional.length !== 2) return null;
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return null;
  }
  if (url.protocol !== 'nbd+unix:' && url.protocol !== 'nbds+unix:') return null;
  const socket = url.searchParams.get('socket');
  if (!socket) return null;
  const exportName = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const base = target.replace(/\/+$/, '');
  return { files: [base, `${base}/nbd`], exportName, socket };
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The running nbdfuse processes with a Unix-socket URI (from /proc). */
export function nbdfuseProcesses(procRoot = '/proc'): NbdfuseProcess[] {
  const out: NbdfuseProcess[] = [];
  let pids: string[];
  try {
    pids = readdirSync(procRoot).filter((p) => /^\d+$/.test(p));
  } catch {
    return out;
  }
  for (const pid of pids) {
    if (readText(join(procRoot, pid, 'comm'))?.trim() !== 'nbdfuse') continue;
    const cmdline = readText(join(procRoot, pid, 'cmdline'));
    if (!cmdline) continue;
    const argv = cmdline.split('\0');
    if (argv.at(-1) === '') argv.pop(); // the command line ends with a NUL
    const parsed = parseNbdfuseArgs(argv);
    if (!parsed) continue;
    // a relative mount point or socket is relative to nbdfuse's working directory
    let cwd = '/';
    try {
      cwd = readlinkSync(join(procRoot, pid, 'cwd'));
    } catch {
      // gone meanwhile, or not ours to read
    }
    out.push({ pid: Number(pid), files: parsed.files.map((f) => resolve(cwd, f)), exportName: parsed.exportName, socket: resolve(cwd, parsed.socket) });
  }
  return out;
}

/** Loop devices and their backing files (kernel names, e.g. loop3 -> /mnt/nbd/nbd). */
export function loopBackingFiles(sysRoot = '/sys'): Map<string, string> {
  const out = new Map<string, string>();
  let names: string[];
  try {
    names = readdirSync(join(sysRoot, 'block')).filter((n) => n.startsWith('loop'));
  } catch {
    return out;
  }
  for (const name of names) {
    const backing = readText(join(sysRoot, 'block', name, 'loop/backing_file'))?.trim();
    if (backing) out.set(name, backing.replace(/ \(deleted\)$/, ''));
  }
  return out;
}

function sameSocket(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

export interface DetectSources extends UsageSources {
  procRoot?: string;
  nbdfuse?: NbdfuseProcess[];
  loops?: Map<string, string>;
}

/**
 * The mount points of the engine devices `devices` reached through the helper's NBD
 * socket `nbdSocket` (nbdfuse, then a loop device, then a mount). Deduplicated.
 */
export async function mountsOfEngineDevices(devices: string[], nbdSocket: string, sources: DetectSources = {}): Promise<DetectedMount[]> {
  const fuse = (sources.nbdfuse ?? nbdfuseProcesses(sources.procRoot)).filter((p) => devices.includes(p.exportName) && sameSocket(p.socket, nbdSocket));
  if (fuse.length === 0) return [];
  const loops = sources.loops ?? loopBackingFiles(sources.sysRoot);
  const usage = await readSystemUsage(sources);
  const sysRoot = sources.sysRoot ?? '/sys';
  const out: DetectedMount[] = [];
  for (const p of fuse) {
    for (const [loop, backing] of loops) {
      if (!p.files.includes(backing)) continue;
      const devText = readText(join(sysRoot, 'block', loop, 'dev'))?.trim();
      const m = devText ? /^(\d+):(\d+)$/.exec(devText) : null;
      if (!m) continue;
      for (const use of usesOf(usage, Number(m[1]), Number(m[2]), sysRoot)) {
        if (use.kind !== 'mounted' || out.some((d) => d.mountPoint === use.detail)) continue;
        out.push({ device: p.exportName, mountPoint: use.detail, via: `nbdfuse ${p.pid} -> ${backing} -> ${use.device}` });
      }
    }
  }
  return out;
}

/**
 * Opens what a take freezes: the mount points asked for (`--freeze`, with the
 * caller's rights: the caller must be able to open each, and each must be a mount
 * point), then those detected for the engine devices (as root). On failure nothing
 * stays open.
 */
export async function openFreezeTargets(
  files: CallerFs,
  asked: string[],
  detected: () => Promise<DetectedMount[]>,
  mountinfo = '/proc/self/mountinfo',
): Promise<FreezeTarget[]> {
  const targets: FreezeTarget[] = [];
  try {
    const mountPoints = new Set(parseMountinfoEntries(readText(mountinfo) ?? '').map((m) => m.mountPoint));
    for (const path of asked) {
      const opened = files.openDirectory(path, 'freeze');
      targets.push({ mountPoint: opened.kernelPath, fd: opened.fd, how: 'asked' });
      if (!mountPoints.has(opened.kernelPath)) throw new BlksnapError('EINVAL', `freeze: ${path} is not a mount point (name the directory a file system is mounted on)`);
    }
    for (const m of await detected()) {
      if (targets.some((t) => t.mountPoint === m.mountPoint)) continue;
      let fd: number;
      try {
        fd = openSync(m.mountPoint, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
      } catch {
        continue; // unmounted meanwhile
      }
      targets.push({ mountPoint: m.mountPoint, fd, how: 'detected', via: m.via });
    }
    return targets;
  } catch (err) {
    for (const t of targets) closeSync(t.fd);
    throw err;
  }
}
