/**
 * What the machine running the tests can do. Tests that need root, loop devices,
 * FUSE or a system tool use these with `it.skipIf(...)` / `describe.skipIf(...)`
 * and say "[root]" (or the tool) in their names, so a skip is visible, never a pass.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

const commandCache = new Map<string, boolean>();

/** True when `name` is an executable on PATH (or an absolute path that exists). */
export function hasCommand(name: string): boolean {
  const cached = commandCache.get(name);
  if (cached !== undefined) return cached;
  let found: boolean;
  if (name.startsWith('/')) found = existsSync(name);
  else {
    try {
      execFileSync('sh', ['-c', `command -v "$1"`, 'sh', name], { stdio: 'ignore' });
      found = true;
    } catch {
      found = false;
    }
  }
  commandCache.set(name, found);
  return found;
}

export const canUseLoop = isRoot && existsSync('/dev/loop-control');
export const canUseFuse = isRoot && existsSync('/dev/fuse');
