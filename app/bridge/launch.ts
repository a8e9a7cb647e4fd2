/**
 * How the app starts the helper when none answers. Always a program path and an
 * argument list (never a shell string):
 * - development: this Node (or Electron run as Node) on bin/blksnap-manager.mjs daemon;
 * - packaged: the packaged launcher (resources/bin/blksnap-manager-helper) through
 *   pkexec, so polkit asks for authorization (directly when already root).
 */
import { isAbsolute, join } from 'node:path';

export const PKEXEC = '/usr/bin/pkexec';
/** The launcher's path inside the packaged app's resources (electron-builder extraResources). */
export const PACKAGED_LAUNCHER = join('bin', 'blksnap-manager-helper');
/** The CLI entry in the source tree (development). */
export const DEV_CLI = join('bin', 'blksnap-manager.mjs');

export interface HelperLaunchOptions {
  packaged: boolean;
  /** process.resourcesPath of the packaged app (absolute). */
  resourcesPath: string;
  /** The user the app runs as: root needs no pkexec. */
  uid: number;
  socketPath: string;
  stateDir: string;
  /** Development: the Node/Electron binary (default process.execPath). */
  execPath?: string;
  /** Development: the repository root holding bin/blksnap-manager.mjs. */
  projectRoot?: string;
  driver?: 'auto' | 'kernel' | 'embedded';
}

export interface LaunchCommand {
  command: string;
  args: string[];
  /** Extra environment for the child (Electron's binary must run as plain Node). */
  env: Record<string, string>;
}

function requireAbsolute(what: string, path: string): void {
  if (!isAbsolute(path)) throw new Error(`${what} must be an absolute path, got "${path}"`);
  if (path.includes('\0')) throw new Error(`${what} contains a NUL byte`);
}

export function helperLaunchCommand(options: HelperLaunchOptions): LaunchCommand {
  requireAbsolute('socketPath', options.socketPath);
  requireAbsolute('stateDir', options.stateDir);
  const daemonArgs = ['--socket', options.socketPath, '--state-dir', options.stateDir];
  if (options.driver !== undefined) daemonArgs.push('--driver', options.driver);
  if (options.packaged) {
    requireAbsolute('resourcesPath', options.resourcesPath);
    const launcher = join(options.resourcesPath, PACKAGED_LAUNCHER);
    if (options.uid === 0) return { command: launcher, args: daemonArgs, env: {} };
    return { command: PKEXEC, args: [launcher, ...daemonArgs], env: {} };
  }
  const execPath = options.execPath ?? process.execPath;
  const projectRoot = options.projectRoot ?? process.cwd();
  requireAbsolute('execPath', execPath);
  requireAbsolute('projectRoot', projectRoot);
  return {
    command: execPath,
    args: [join(projectRoot, DEV_CLI), 'daemon', ...daemonArgs],
    env: { ELECTRON_RUN_AS_NODE: '1' },
  };
}
