/**
 * Default locations the app uses for the helper: its socket (the rule shared with the
 * CLI, engine/protocol/socket-path.ts) and its state directory ($XDG_STATE_HOME or
 * ~/.local/state).
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { HELPER_DIR_NAME, helperRuntimeDir } from '../../engine/protocol/socket-path.js';

export const APP_DIR_NAME = HELPER_DIR_NAME;

function selfUid(): number {
  return typeof process.getuid === 'function' ? process.getuid() : 0;
}

/** The directory the helper socket lives in (created 0700 by the helper). */
export function defaultRuntimeDir(env: NodeJS.ProcessEnv = process.env, uid = selfUid()): string {
  return helperRuntimeDir({ env, uid, tmpdir: tmpdir(), exists: existsSync });
}

export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env, uid = selfUid()): string {
  return join(defaultRuntimeDir(env, uid), 'helper.sock');
}

/** $XDG_STATE_HOME/blksnap-manager, else ~/.local/state/blksnap-manager. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_STATE_HOME'];
  const base = xdg !== undefined && xdg.startsWith('/') ? xdg : join(homedir(), '.local', 'state');
  return join(base, APP_DIR_NAME);
}

/** The nearest directory at or above `startDir` holding the app's package.json (dev and dist layouts alike). */
export function findProjectRoot(startDir: string): string | null {
  let dir = startDir;
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      try {
        const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: unknown };
        if (pkg.name === 'blksnap-manager') return dir;
      } catch {
        // not ours
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** The app version from the project's package.json ("0.0.0" when unknown). */
export function projectVersion(root: string | null): string {
  if (root === null) return '0.0.0';
  try {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}
