/** Default locations of the helper socket and state directory. */
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
