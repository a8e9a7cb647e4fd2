/**
 * scripts/test.sh (npm test) in a scratch copy of the project whose npm and npx are
 * stand-ins: the real script's phases, progress lines, failure handling and the time
 * per phase at the end, without running the real lint, build and suite.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/renderer-build.js';

const REPORT = JSON.stringify({
  numPassedTests: 2,
  numFailedTests: 0,
  numPendingTests: 0,
  numTodoTests: 0,
  numFailedTestSuites: 0,
  testResults: [],
});

function executable(path: string, text: string): void {
  writeFileSync(path, text);
  chmodSync(path, 0o755);
}

/** A project copy where `npm run STEP` prints and exits with FAIL_<STEP> (default 0). */
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bm-test-sh-'));
  mkdirSync(join(dir, 'scripts'));
  mkdirSync(join(dir, 'bin'));
  copyFileSync(join(PROJECT_ROOT, 'scripts', 'test.sh'), join(dir, 'scripts', 'test.sh'));
  copyFileSync(join(PROJECT_ROOT, 'scripts', 'test-summary.mjs'), join(dir, 'scripts', 'test-summary.mjs'));
  executable(join(dir, 'scripts', 'install-system-deps.sh'), '#!/bin/sh\necho "all system packages present"\n');
  executable(
    join(dir, 'bin', 'npm'),
    '#!/bin/sh\n# npm run --silent STEP\nstep=${3%%:*}\necho "$3 ran" >> calls.log\nsleep 0.3\necho "output of $step"\neval "exit \\${FAIL_$step:-0}"\n',
  );
  executable(join(dir, 'bin', 'npx'), `#!/bin/sh\necho "npx $*" >> calls.log\nmkdir -p test-results\necho '${REPORT}' > test-results/vitest.json\necho "vitest output"\n`);
  return dir;
}

function run(dir: string, env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync('bash', ['scripts/test.sh'], {
    cwd: dir,
    env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env['PATH'] ?? ''}`, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('npm test (scripts/test.sh)', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('says when each phase starts and ends, runs the tests after lint, typecheck and build, and ends with the time per phase', () => {
    const dir = scratch();
    dirs.push(dir);
    const { status, out } = run(dir);
    expect(status).toBe(0);
    for (const step of ['system packages', 'lint', 'typecheck', 'build', 'tests']) {
      expect(out).toMatch(new RegExp(`^\\[npm test \\d+:\\d\\d\\] ${step}: started$`, 'm'));
      expect(out).toMatch(new RegExp(`^\\[npm test \\d+:\\d\\d\\] ${step}: done in \\d+:\\d\\d$`, 'm'));
      expect(out).toMatch(new RegExp(`^ {2}${step}: \\d+:\\d\\d$`, 'm'));
    }
    expect(out).toContain('output of lint');
    expect(out).toContain('vitest output');
    expect(out).toMatch(/^tests: 2 passed, 0 failed, 0 skipped$/m);
    expect(out).toMatch(/^ {2}total: \d+:\d\d$/m);
    // the tests start only after all three
    const calls = readFileSync(join(dir, 'calls.log'), 'utf8').trim().split('\n');
    // the build emits without a second type check (typecheck runs beside it)
    expect(calls.slice(0, 3).sort()).toEqual(['build:unchecked ran', 'lint ran', 'typecheck ran']);
    expect(calls[3]).toMatch(/^npx vitest run /);
  });

  it('shows the failing phase, does not run the tests and fails', () => {
    const dir = scratch();
    dirs.push(dir);
    const { status, out } = run(dir, { FAIL_typecheck: '2' });
    expect(status).toBe(1);
    expect(out).toMatch(/typecheck: FAILED \(exit 2\) in \d+:\d\d/);
    expect(out).toContain('output of typecheck');
    expect(out).toMatch(/not running the tests: typecheck failed/);
    expect(readFileSync(join(dir, 'calls.log'), 'utf8')).not.toContain('npx');
    expect(existsSync(join(dir, 'test-results', 'vitest.json'))).toBe(false);
  });
});
