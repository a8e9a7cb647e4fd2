/**
 * Start time of the blksnap-manager command (bin/blksnap-manager.mjs), the way an
 * administrator runs it in a checkout:
 *
 *   npm run build && npm run bench:cli [-- --runs N]
 *
 * Medians of N runs (default 10) of `version` and of `devices` against a running
 * helper (embedded engine, in a temporary directory), once on the built code (dist/,
 * what the command runs when it is up to date) and once through the TypeScript
 * loader (BLKSNAP_MANAGER_USE_DIST=0, what it runs when dist/ is stale). Wall time
 * and CPU time (user + system) of the whole process, so a busy machine shows in the
 * gap between them. Prints a table and writes bench-results/cli-start.json.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../helpers/renderer-build.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' } } });
const RUNS = Math.max(1, Number(values.runs) || 10);
const CLI = join(PROJECT_ROOT, 'bin', 'blksnap-manager.mjs');

function median(list: number[]): number {
  const sorted = [...list].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** One run under /usr/bin/time: wall and CPU seconds. */
function timed(args: string[], env: NodeJS.ProcessEnv): { wall: number; cpu: number } {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S', process.execPath, CLI, ...args], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`blksnap-manager ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  const [wall, user, sys] = (r.stderr.trim().split('\n').pop() ?? '').split(' ').map(Number);
  return { wall: wall ?? NaN, cpu: (user ?? NaN) + (sys ?? NaN) };
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

const dir = await mkdtemp(join(tmpdir(), 'bench-cli-'));
const socket = join(dir, 'run', 'helper.sock');
const helper = spawn(process.execPath, [CLI, 'daemon', '--socket', socket, '--state-dir', join(dir, 'state'), '--driver', 'embedded', '-q'], {
  stdio: 'ignore',
});
try {
  for (let i = 0; i < 600 && !(await canConnect(socket)); i++) await new Promise((r) => setTimeout(r, 50));
  const rows: { mode: string; command: string; wallMedian: number; cpuMedian: number }[] = [];
  for (const mode of ['dist', 'tsx'] as const) {
    const env = { ...process.env, BLKSNAP_MANAGER_USE_DIST: mode === 'dist' ? '1' : '0' };
    for (const args of [['version', '--socket', socket], ['devices', '--socket', socket]]) {
      timed(args, env); // warm-up (file cache, tsx's transform cache)
      const runs = Array.from({ length: RUNS }, () => timed(args, env));
      rows.push({ mode, command: args[0] as string, wallMedian: median(runs.map((r) => r.wall)), cpuMedian: median(runs.map((r) => r.cpu)) });
    }
  }
  console.log(`blksnap-manager start time, median of ${RUNS} runs (${availableParallelism()} CPUs, load average ${loadavg()[0]?.toFixed(1)})`);
  console.log('| code | command | wall (s) | CPU (s) |\n|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.mode === 'dist' ? 'dist/ (built)' : 'sources via tsx'} | ${r.command} | ${r.wallMedian.toFixed(2)} | ${r.cpuMedian.toFixed(2)} |`);
  await mkdir('bench-results', { recursive: true });
  await writeFile(join('bench-results', 'cli-start.json'), `${JSON.stringify({ runs: RUNS, loadAverage: loadavg()[0], rows }, null, 2)}\n`);
} finally {
  helper.kill('SIGTERM');
  await new Promise((r) => helper.once('exit', r));
  await rm(dir, { recursive: true, force: true });
}
