/**
 * Which blksnap module is loaded, and in which ABI dialect, decided from files only:
 * device nodes, /proc/misc, /proc/devices, /sys/module/<name> and the kernel release.
 * No ioctl is sent here: the dialects share request numbers that mean different
 * things (lk6.15's filter ATTACH is v6's CTL; create carries a fd in v6 and a path
 * pointer in the others), so the dialect must be known before the first one.
 * docs/kernel-driver.md ("Detection").
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DialectName, FilterMechanism } from './dialects.js';
import { DIALECTS } from './dialects.js';

export interface ModuleHealth {
  /** A blksnap module (of any dialect, supported or not) is loaded. */
  loaded: boolean;
  /** The dialect the kernel driver will speak; null when none is usable. */
  dialect: DialectName | null;
  /** The module's version from /sys/module/<name>/version, when it has one. */
  moduleVersion: string | null;
  /** How filter commands reach the tracker; null when no dialect is usable. */
  filter: FilterMechanism | null;
  /** bdevfilter.ko is loaded (VAL-7.0 needs it; the others have the filter in the kernel). */
  bdevfilter: boolean;
  /** The control device the driver opens; null when no dialect is usable. */
  controlPath: string | null;
  /** One plain sentence for the UI's module health line. */
  summary: string;
  /** What to install or load, when the kernel module cannot be used; null when it can. */
  advice: string | null;
}

export interface DetectOptions {
  /** Prefix of /dev, /proc and /sys (tests use a fake tree). Default "/". */
  root?: string;
  /** Overrides the kernel release read from /proc/sys/kernel/osrelease. */
  kernelRelease?: string;
}

export const INSTALL_ADVICE =
  'install blksnap-dkms 7.x (or Veeam Agent for Linux 6.2 or later), which provides the veeamblksnap and bdevfilter modules, ' +
  'then run "modprobe bdevfilter && modprobe veeamblksnap"; until then the helper uses its embedded engine';

function read(root: string, path: string): string | null {
  try {
    return readFileSync(join(root, path), 'utf8');
  } catch {
    return null;
  }
}

/** Names listed in /proc/misc ("minor name") or /proc/devices ("major name"). */
function listed(text: string | null, name: string): boolean {
  return (text ?? '').split('\n').some((line) => line.trim().split(/\s+/)[1] === name);
}

function moduleVersion(root: string, module: string): string | null {
  return read(root, `sys/module/${module}/version`)?.trim() || null;
}

const versionText = (version: string | null): string => (version ? ` ${version}` : '');

/** [major, minor] of a kernel release such as "6.1.0-57-cloud-amd64". */
function releaseNumbers(release: string): [number, number] | null {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/** The module health of this machine (see ModuleHealth). */
export function detectKernelModule(options: DetectOptions = {}): ModuleHealth {
  const root = options.root ?? '/';
  const has = (path: string): boolean => existsSync(join(root, path));
  const misc = read(root, 'proc/misc');
  const chrdevs = read(root, 'proc/devices');
  const bdevfilter = has('dev/bdevfilter') || has('sys/module/bdevfilter') || listed(misc, 'bdevfilter');

  const veeam = has('dev/veeamblksnap') || has('sys/module/veeamblksnap') || listed(misc, 'veeamblksnap') || listed(chrdevs, 'veeamblksnap');
  if (veeam) {
    const version = moduleVersion(root, 'veeamblksnap');
    const major = version ? Number(version.split('.')[0]) : NaN;
    // VAL-6.x / stable-v1.0: a char device (register_chrdev, in /proc/devices), version 1.x..6.x, no bdevfilter
    const old = (Number.isFinite(major) && major < 7) || (listed(chrdevs, 'veeamblksnap') && !listed(misc, 'veeamblksnap'));
    if (old) {
      return {
        loaded: true,
        dialect: null,
        moduleVersion: version,
        filter: null,
        bdevfilter,
        controlPath: null,
        summary: `veeamblksnap ${version ?? '(unknown version)'} is loaded, but it speaks the older blk_snap ABI this driver does not support`,
        advice: `replace it: ${INSTALL_ADVICE}`,
      };
    }
    const d = DIALECTS.val7;
    return {
      loaded: true,
      dialect: d.name,
      moduleVersion: version,
      filter: d.filter,
      bdevfilter,
      controlPath: d.controlPath,
      summary: `veeamblksnap${versionText(version)} (VAL-7 dialect) is loaded; bdevfilter ${bdevfilter ? 'is loaded' : 'is missing'}`,
      advice: bdevfilter ? null : 'load the filter with "modprobe bdevfilter" (it comes with blksnap-dkms 7.x)',
    };
  }

  if (has('dev/blksnap-control') || has('sys/module/blksnap') || listed(misc, 'blksnap-control')) {
    const version = moduleVersion(root, 'blksnap');
    const release = options.kernelRelease ?? read(root, 'proc/sys/kernel/osrelease')?.trim() ?? '';
    const numbers = releaseNumbers(release);
    // Same control device name: the kernel release decides (the lk6.15 filter patch
    // exists for 6.15 and later, v6 for 6.7-rc1). The parameter
    // free_diff_buffer_pool_size, which the lk6.15 module no longer has, marks the
    // older series on any kernel.
    const oldParam = has('sys/module/blksnap/parameters/free_diff_buffer_pool_size');
    const recent = numbers !== null && (numbers[0] > 6 || (numbers[0] === 6 && numbers[1] >= 15));
    const d = !oldParam && recent ? DIALECTS['lk6.15'] : DIALECTS.v6;
    return {
      loaded: true,
      dialect: d.name,
      moduleVersion: version,
      filter: d.filter,
      bdevfilter,
      controlPath: d.controlPath,
      summary: `blksnap${versionText(version)} (${d.name} dialect, kernel ${release || 'unknown'}) is loaded; the block-device filter is in the kernel`,
      advice: null,
    };
  }

  return {
    loaded: false,
    dialect: null,
    moduleVersion: null,
    filter: null,
    bdevfilter,
    controlPath: null,
    summary: bdevfilter
      ? 'bdevfilter is loaded but no blksnap module is'
      : 'no blksnap kernel module is loaded',
    advice: bdevfilter ? 'load the snapshot module with "modprobe veeamblksnap"' : INSTALL_ADVICE,
  };
}
