/** Default locations of the helper socket and state directory. */
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { helperSocketPath } from '../protocol/socket-path.js';

/** The helper socket by the one shared rule (engine/protocol/socket-path.ts), on this machine. */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return helperSocketPath({ env, uid, tmpdir: tmpdir(), exists: existsSync });
}

/** /var/lib/blksnap-manager for root, else $XDG_STATE_HOME (~/.local/state)/blksnap-manager. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const self = typeof process.getuid === 'function' ? process.getuid() : 0;
  if (self === 0) return '/var/lib/blksnap-manager';
  const base = env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/') ? env.XDG_STATE_HOME : join(homedir(), '.local', 'state');
  return join(base, 'blksnap-manager');
}

/**
 * Helper sockets that exist on this machine (per-user helpers under /run/user/UID,
 * the system service's): offered when the default socket has no helper, e.g. for
 * root (sudo) wanting a user's helper.
 */
export function findHelperSockets(userRuntimeRoot = '/run/user', fixed: string[] = ['/run/blksnap-manager/helper.sock']): string[] {
  const candidates = [...fixed];
  try {
    for (const entry of readdirSync(userRuntimeRoot)) candidates.push(join(userRuntimeRoot, entry, 'blksnap-manager', 'helper.sock'));
  } catch {
    // no such root: only the fixed places
  }
  return candidates.filter((path) => {
    try {
      return lstatSync(path).isSocket();
    } catch {
      return false; // absent, or a directory we may not enter
    }
  });
}
