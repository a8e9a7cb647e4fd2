/** Default locations of the helper socket and state directory. */
import { lstatSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

function uid(env: NodeJS.ProcessEnv): number {
  const pk = env.PKEXEC_UID;
  if (pk && /^\d+$/.test(pk)) return Number(pk);
  return typeof process.getuid === 'function' ? process.getuid() : 0;
}

/** $XDG_RUNTIME_DIR/blksnap-manager/helper.sock, else /run/user/UID/blksnap-manager/helper.sock. */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const runtime = env.XDG_RUNTIME_DIR && env.XDG_RUNTIME_DIR.startsWith('/') ? env.XDG_RUNTIME_DIR : `/run/user/${uid(env)}`;
  return join(runtime, 'blksnap-manager', 'helper.sock');
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
