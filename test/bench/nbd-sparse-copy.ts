/**
 * Sparse-image copy bench: a 4 GiB image with 1% data (1 MiB every 100 MiB),
 * exported as an embedded-engine device by our server and by `nbdkit file`
 * (which reports the file's extents), copied by `nbdcopy` (to null:) and by
 * `qemu-img convert` (to a raw file). A client that sees the holes reads only
 * the data; one that does not reads 4 GiB of zeroes.
 *
 * Used by test/bench/nbd.ts (rows "sparse-copy ..."); alone:
 *   npx tsx test/bench/nbd-sparse-copy.ts   (prints seconds per copy)
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startServerChild } from './nbd-server-child.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
export const SPARSE_IMAGE_SIZE = 4096 * MiB;
const DATA_EVERY = 100 * MiB;
/** Timed copies per server: each takes well under 0.1 s, most of it the client's own start, so the spread is wide. */
const REPEATS = 15;
const WARMUP = 3;

export interface SparseCopyResult {
  client: 'nbdcopy' | 'qemu-img convert';
  /** Median seconds of one whole-image copy. */
  oursSeconds: number;
  nbdkitSeconds: number;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

async function copyOnce(client: SparseCopyResult['client'], uri: string, out: string): Promise<number> {
  await rm(out, { force: true });
  if (client === 'nbdcopy') return timed(() => run('nbdcopy', [uri, 'null:']));
  return timed(() => run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, out]));
}

/** Runs the sparse copies against both servers; both serve the same image file. */
export async function sparseCopyBench(): Promise<SparseCopyResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'nbd-sparse-bench-'));
  const image = join(dir, 'sparse.img');
  await writeFile(image, '');
  await truncate(image, SPARSE_IMAGE_SIZE);
  const fh = await open(image, 'r+');
  for (let at = 0; at < SPARSE_IMAGE_SIZE; at += DATA_EVERY) await fh.write(randomBytes(MiB), 0, MiB, at);
  await fh.close();

  // Our server in a process of its own, like nbdkit.
  const ours = await startServerChild({ image, name: 'sparse', dir, plain: false });
  const nbdkitSocket = join(dir, 'nbdkit.sock');
  const nbdkit = spawn('nbdkit', ['--exit-with-parent', '-f', '-r', '-U', nbdkitSocket, 'file', `file=${image}`], { stdio: 'ignore' });
  const results: SparseCopyResult[] = [];
  try {
    const deadline = Date.now() + 10_000;
    while (!existsSync(nbdkitSocket)) {
      if (nbdkit.exitCode !== null || Date.now() > deadline) throw new Error('nbdkit did not start');
      await new Promise((r) => setTimeout(r, 20));
    }
    const out = join(dir, 'copy.raw');
    for (const client of ['nbdcopy', 'qemu-img convert'] as const) {
      const mine: number[] = [];
      const theirs: number[] = [];
      // Untimed copies first, for both servers alike (our server's process starts cold).
      for (let i = 0; i < WARMUP; i++) {
        await copyOnce(client, `nbd+unix:///?socket=${nbdkitSocket}`, out);
        await copyOnce(client, ours.uriFor('sparse'), out);
      }
      // Alternating which server goes first, so that neither always follows the other.
      for (let i = 0; i < REPEATS; i++) {
        if (i % 2 === 0) {
          theirs.push(await copyOnce(client, `nbd+unix:///?socket=${nbdkitSocket}`, out));
          mine.push(await copyOnce(client, ours.uriFor('sparse'), out));
        } else {
          mine.push(await copyOnce(client, ours.uriFor('sparse'), out));
          theirs.push(await copyOnce(client, `nbd+unix:///?socket=${nbdkitSocket}`, out));
        }
      }
      results.push({ client, oursSeconds: median(mine), nbdkitSeconds: median(theirs) });
    }
  } finally {
    nbdkit.kill('SIGTERM');
    await ours.close();
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}

if (process.argv[1]?.endsWith('nbd-sparse-copy.ts')) {
  for (const r of await sparseCopyBench()) {
    console.log(`${r.client}: ours ${r.oursSeconds.toFixed(2)} s, nbdkit file ${r.nbdkitSeconds.toFixed(2)} s, ours/nbdkit time ${(r.oursSeconds / r.nbdkitSeconds).toFixed(2)}`);
  }
}
