/** Test helpers: a temp dir, a real helper process in it, and the launch command to start one. */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { LaunchCommand } from '../../../app/bridge/launch.js';

export const REPO_ROOT = resolve(import.meta.dirname, '../../..');
const RUN_HELPER = join(REPO_ROOT, 'test/app/bridge/run-helper.ts');

export interface TempDirs {
  root: string;
  socketPath: string;
  stateDir: string;
  logPath: string;
  cleanup(): void;
}

export function tempDirs(prefix = 'blksnap-app-'): TempDirs {
  const root = mkdtempSync(join(tmpdir(), prefix));
  return {
    root,
    socketPath: join(root, 'run', 'helper.sock'),
    stateDir: join(root, 'state'),
    logPath: join(root, 'helper.log'),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** The command that starts the helper from the sources (tsx), as the bridge's launch option. */
export function fixtureLaunch(dirs: TempDirs): LaunchCommand {
  return {
    command: process.execPath,
    args: ['--import', 'tsx', RUN_HELPER, '--socket', dirs.socketPath, '--state-dir', dirs.stateDir],
    env: {},
  };
}

/** Spawns a helper and resolves once `socketPath` accepts connections. */
export async function spawnHelper(dirs: TempDirs): Promise<ChildProcess> {
  const launch = fixtureLaunch(dirs);
  const child = spawn(launch.command, launch.args, { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const { connect } = await import('node:net');
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`helper exited early (${child.exitCode}): ${stderr}`);
    const up = await new Promise<boolean>((done) => {
      const s = connect(dirs.socketPath);
      s.once('connect', () => {
        s.destroy();
        done(true);
      });
      s.once('error', () => done(false));
    });
    if (up) return child;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`helper did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM and wait for exit. */
export async function stopHelper(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
