/**
 * One socket rule end to end: browser mode (what `npm start` runs without Electron)
 * starts its helper on the default socket, and the CLI run without --socket, in the
 * same environment, reaches that helper.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../helpers/renderer-build.js';

const uid = process.getuid?.() ?? 0;
const CLI = join(PROJECT_ROOT, 'bin', 'blksnap-manager.mjs');

function until(child: ChildProcess, pattern: RegExp, stream: 'stdout' | 'stderr'): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('utf8');
      if (pattern.test(text)) resolve(text);
    };
    child[stream]?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`browser mode exited (${code}) before ${pattern}: ${text}`)));
  });
}

describe('npm start and the CLI share the helper socket', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanups.splice(0).reverse()) c();
  });

  /** Starts browser mode in `env`, waits for its helper; returns what it printed. */
  async function browserMode(env: NodeJS.ProcessEnv, stateDir: string): Promise<string> {
    const server = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'app/web/main.ts'), '--port', '0', '--state-dir', stateDir], {
      cwd: PROJECT_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => {
      server.kill('SIGTERM');
      const pidFile = join(stateDir, 'helper.pid');
      if (!existsSync(pidFile)) return;
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      try {
        process.kill(pid, 'SIGTERM');
        // the helper removes its socket on the way out: wait before the directory goes
        spawnSync('sh', ['-c', 'while kill -0 "$1" 2>/dev/null; do sleep 0.05; done', 'sh', String(pid)], { timeout: 10_000 });
      } catch {
        // already gone
      }
    });
    const printed = until(server, /Lab disks are stored in/, 'stdout');
    await until(server, /helper: connected/, 'stderr');
    return printed;
  }

  function cliDevices(env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [CLI, 'devices', '--json'], { cwd: PROJECT_ROOT, env, encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  function temp(): string {
    const dir = mkdtempSync(join(tmpdir(), 'bm-start-socket-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  // Without a login session (no $XDG_RUNTIME_DIR, no /run/user/UID: root here, CI,
  // containers) both fall back to TMPDIR/blksnap-manager-UID; with a session, a private
  // $XDG_RUNTIME_DIR stands in for it (never the real one of this user).
  const noSession = !existsSync(`/run/user/${uid}`);
  it(`the CLI without --socket lists the devices of the helper browser mode started (${noSession ? 'no login session: temporary directory' : '$XDG_RUNTIME_DIR'})`, async () => {
    const dir = temp();
    const env: NodeJS.ProcessEnv = { ...process.env, PKEXEC_UID: '' };
    let socket: string;
    if (noSession) {
      delete env['XDG_RUNTIME_DIR'];
      env['TMPDIR'] = dir;
      socket = join(dir, `blksnap-manager-${uid}`, 'helper.sock');
    } else {
      env['XDG_RUNTIME_DIR'] = join(dir, 'run');
      mkdirSync(env['XDG_RUNTIME_DIR'], { mode: 0o700 });
      socket = join(dir, 'run', 'blksnap-manager', 'helper.sock');
    }
    const printed = await browserMode(env, join(dir, 'state'));
    expect(printed).toContain(`listens on ${socket}`);
    expect(printed).toMatch(/keeps running after Ctrl\+C/);
    const r = cliDevices(env);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toHaveProperty('devices');
  });
});
