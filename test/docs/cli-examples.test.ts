/**
 * docs/cli.md runs as written: its runnable examples (```console transcripts and
 * ```sh blocks, the convention at the top of the page), in order, as one bash
 * session in a scratch directory, with the checkout's bin/ on PATH and a temporary
 * helper on the default socket (a private $XDG_RUNTIME_DIR). A command that exits
 * otherwise than the page says (0, or the errno of a `blksnap-manager: ERRNO: ...`
 * line shown under it) fails the test, naming the line of docs/cli.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERRNO } from '../../engine/abi/errno.js';
import { CLI_BIN } from '../helpers/cli.js';
import { PROJECT_ROOT } from '../helpers/renderer-build.js';
import { docExamples } from './doc-examples.js';
import type { DocCommand } from './doc-examples.js';

const PAGE = join(PROJECT_ROOT, 'docs', 'cli.md');

/** One bash script: each command, then a check of its exit status naming it. */
function sessionScript(commands: DocCommand[]): string {
  const lines = [
    '__check() { if [ "$1" != "$2" ]; then echo "__EXAMPLE_FAILED $3 $1" >&2; exit 99; fi; }',
  ];
  commands.forEach((c, i) => {
    lines.push(`echo "__EXAMPLE ${i}" >&2`, c.text, `__check $? ${c.expectErrno === null ? 0 : ERRNO[c.expectErrno]} ${i}`);
  });
  return `${lines.join('\n')}\n`;
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('docs/cli.md examples', () => {
  const commands = docExamples(readFileSync(PAGE, 'utf8'));
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let helper: ChildProcess;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-doc-cli-'));
    mkdirSync(join(dir, 'run'), { mode: 0o700 });
    mkdirSync(join(dir, 'work'));
    env = { ...process.env, PATH: `${join(PROJECT_ROOT, 'bin')}:${process.env['PATH'] ?? ''}`, XDG_RUNTIME_DIR: join(dir, 'run'), PKEXEC_UID: '' };
    // the helper the page assumes: on the default socket, no --socket given
    helper = spawn(process.execPath, [CLI_BIN, 'daemon', '--state-dir', join(dir, 'state'), '--driver', 'embedded', '-q'], { env, stdio: 'ignore' });
    const socket = join(dir, 'run', 'blksnap-manager', 'helper.sock');
    const deadline = Date.now() + 30_000;
    while (!(await canConnect(socket))) {
      if (helper.exitCode !== null || Date.now() > deadline) throw new Error(`the helper did not start (exit ${helper.exitCode})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    if (helper.exitCode === null) {
      const exited = new Promise((r) => helper.once('exit', r));
      helper.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds the runnable examples: commands, with their expected failures', () => {
    expect(commands.length).toBeGreaterThan(40);
    expect(commands.some((c) => c.expectErrno !== null)).toBe(true);
    expect(commands.every((c) => !c.text.startsWith('$'))).toBe(true);
  });

  it('parse as bash', () => {
    const r = spawnSync('bash', ['-n'], { input: sessionScript(commands), encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('run in order as one session, each exiting as the page says', { timeout: 240_000 }, async () => {
    const session = spawn('bash', ['-c', sessionScript(commands)], { cwd: join(dir, 'work'), env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    session.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    session.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const status = await new Promise<number | null>((resolve) => session.once('exit', resolve));
    try {
      process.kill(-(session.pid as number), 'SIGTERM'); // background examples (a watcher, the first try's helper)
    } catch {
      // none left
    }
    const failed = /__EXAMPLE_FAILED (\d+) (\d+)/.exec(stderr);
    if (failed !== null) {
      const c = commands[Number(failed[1])] as DocCommand;
      const tail = stderr.slice(0, failed.index).split(/__EXAMPLE \d+\n/).pop() ?? '';
      const want = c.expectErrno === null ? 'exit 0' : `${c.expectErrno} (${ERRNO[c.expectErrno]})`;
      expect.fail(`docs/cli.md line ${c.line}: "${c.text}" exited ${failed[2]}, the page says ${want}\n${tail}\nstdout (last lines):\n${stdout.split('\n').slice(-15).join('\n')}`);
    }
    expect(status).toBe(0);
  });
});
