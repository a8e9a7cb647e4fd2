/**
 * How the app starts the helper when none answers. Always a program path and an
 * argument list (never a shell string):
 * - development: this Node (or Electron run as Node) on bin/blksnap-manager.mjs daemon,
 *   with the socket and state directory the app chose;
 * - packaged: the launcher packaging/bin/blksnap-manager-helper, which electron-builder
 *   puts in resources/bin (the deb: /opt/Blksnap Manager/resources/bin/..., the path the
 *   polkit action org.blksnapmanager.helper names), through pkexec; directly when
 *   already root. The launcher fixes the socket (/run/user/UID/blksnap-manager/helper.sock,
 *   refusing any other --socket) and the state directory (/var/lib/blksnap-manager), so
 *   the app checks that it expects them there.
 */
import { isAbsolute, join } from 'node:path';

export const PKEXEC = '/usr/bin/pkexec';
/** The launcher inside the packaged app's resources (electron-builder extraResources). */
export const RESOURCES_LAUNCHER = join('bin', 'blksnap-manager-helper');
/** The state directory of the packaged (root) helper. */
export const PACKAGED_STATE_DIR = '/var/lib/blksnap-manager';
/** The CLI entry in the source tree (development). */
export const DEV_CLI = join('bin', 'blksnap-manager.mjs');

/** The socket the packaged launcher listens on for a user. */
export function packagedSocketPath(uid: number): string {
  return `/run/user/${uid}/blksnap-manager/helper.sock`;
}

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
  if (!Number.isSafeInteger(options.uid) || options.uid < 0) throw new Error(`uid must be a user id, got ${options.uid}`);
  const driver = options.driver ?? 'auto';
  if (options.packaged) {
    const expected = packagedSocketPath(options.uid);
    if (options.socketPath !== expected) {
      throw new Error(`the packaged helper listens on ${expected}, not ${options.socketPath}`);
    }
    if (options.stateDir !== PACKAGED_STATE_DIR) {
      throw new Error(`the packaged helper keeps its state in ${PACKAGED_STATE_DIR}, not ${options.stateDir}`);
    }
    requireAbsolute('resourcesPath', options.resourcesPath);
    const launcher = join(options.resourcesPath, RESOURCES_LAUNCHER);
    const args = ['--driver', driver, '--socket', options.socketPath];
    if (options.uid === 0) return { command: launcher, args, env: {} };
    return { command: PKEXEC, args: [launcher, ...args], env: {} };
  }
  const execPath = options.execPath ?? process.execPath;
  const projectRoot = options.projectRoot ?? process.cwd();
  requireAbsolute('execPath', execPath);
  requireAbsolute('projectRoot', projectRoot);
  return {
    command: execPath,
    args: [join(projectRoot, DEV_CLI), 'daemon', '--socket', options.socketPath, '--state-dir', options.stateDir, '--driver', driver],
    env: { ELECTRON_RUN_AS_NODE: '1' },
  };
}
