/**
 * Block-device discovery: lsblk's JSON when lsblk works, /sys/block otherwise.
 * util-linux < 2.37 has no MOUNTPOINTS column: then MOUNTPOINT is asked for.
 */
import { execFile } from 'node:child_process';
import type { BlockDeviceEntry } from './block-device-entry.js';
import { LSBLK_COLUMNS, parseLsblkJson } from './lsblk-parse.js';
import type { SysfsOptions } from './sysfs-block.js';
import { readSysfsBlockDevices } from './sysfs-block.js';

export type { BlockDeviceEntry } from './block-device-entry.js';
export { flattenDevices } from './block-device-entry.js';
export { parseLsblkJson, LSBLK_COLUMNS } from './lsblk-parse.js';
export { readSysfsBlockDevices, parseMountinfo } from './sysfs-block.js';

export interface DiscoveryResult {
  source: 'lsblk' | 'sysfs';
  devices: BlockDeviceEntry[];
  /** Why lsblk was not used, when source is sysfs. */
  lsblkError?: string;
}

export interface DiscoveryOptions extends SysfsOptions {
  /** lsblk executable; default "lsblk" from PATH. */
  lsblk?: string;
  timeoutMs?: number;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} failed: ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
  });
}

function lsblkArgs(columns: readonly string[]): string[] {
  return ['--json', '--bytes', '--output', columns.join(',')];
}

/** Runs lsblk (retrying with MOUNTPOINT on an old util-linux) and parses its JSON. */
export async function listWithLsblk(options: DiscoveryOptions = {}): Promise<BlockDeviceEntry[]> {
  const cmd = options.lsblk ?? 'lsblk';
  const timeoutMs = options.timeoutMs ?? 10_000;
  try {
    return parseLsblkJson(await run(cmd, lsblkArgs(LSBLK_COLUMNS), timeoutMs));
  } catch (err) {
    if (!/unknown column/i.test(String(err))) throw err;
    const old = LSBLK_COLUMNS.map((c) => (c === 'MOUNTPOINTS' ? 'MOUNTPOINT' : c));
    return parseLsblkJson(await run(cmd, lsblkArgs(old), timeoutMs));
  }
}

/** The machine's block devices: lsblk, or the sysfs fallback when lsblk is missing or fails. */
export async function discoverBlockDevices(options: DiscoveryOptions = {}): Promise<DiscoveryResult> {
  try {
    return { source: 'lsblk', devices: await listWithLsblk(options) };
  } catch (err) {
    return {
      source: 'sysfs',
      devices: readSysfsBlockDevices(options),
      lsblkError: err instanceof Error ? err.message : String(err),
    };
  }
}
