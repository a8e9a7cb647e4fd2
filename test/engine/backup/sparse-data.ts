/**
 * Test data for the backup tests: reproducible sparse images (whole clusters of random
 * bytes, of compressible text, partial clusters and zero runs) and small file helpers.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ImageWriter } from '../../../engine/backup/image-writer.js';
import { seededRandom } from '../../helpers/seeded-random.js';

export const run = promisify(execFile);
export const KiB = 1024;
export const MiB = 1024 * 1024;

export interface SparseOptions {
  size: number;
  seed: number;
  /** Fraction of 4 KiB pieces that hold data (the rest zeroes). */
  density?: number;
  /** Fraction of data pieces that are compressible text instead of random bytes. */
  textFraction?: number;
}

/** A reproducible sparse image in memory. */
export function sparseImage(opts: SparseOptions): Buffer {
  const rnd = seededRandom(opts.seed);
  const buf = Buffer.alloc(opts.size);
  const density = opts.density ?? 0.3;
  const text = opts.textFraction ?? 0.3;
  const piece = 4 * KiB;
  // Runs of pieces keep whole clusters zero in places, as on a real disk.
  for (let at = 0; at < opts.size; ) {
    const run = Math.min(opts.size - at, piece * (1 + Math.floor(rnd() * 40)));
    if (rnd() < density) {
      if (rnd() < text) {
        const line = Buffer.from(`line ${Math.floor(rnd() * 1000)} of a compressible log file\n`);
        for (let i = 0; i < run; i++) buf[at + i] = line[i % line.length]!;
      } else {
        for (let i = 0; i < run; i += 4) buf.writeUInt32LE(Math.floor(rnd() * 2 ** 32), at + i);
      }
    }
    at += run;
  }
  return buf;
}

/** Writes every cluster of `data` to an image writer in chunks, then finishes it. */
export async function writeAll(writer: ImageWriter, data: Buffer, chunk = MiB): Promise<void> {
  for (let at = 0; at < data.length; at += chunk) await writer.write(at, data.subarray(at, Math.min(at + chunk, data.length)));
  await writer.finish();
}

export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `bsm-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function saveRaw(path: string, data: Buffer): Promise<string> {
  await writeFile(path, data);
  return path;
}

/** `qemu-img check` of a qcow2 file: exit code and output. */
export async function qemuCheck(path: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout } = await run('qemu-img', ['check', '-f', 'qcow2', path]);
    return { ok: true, output: stdout };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** `qemu-img compare` (exit 0: equal contents). */
export async function qemuCompare(a: string, aFormat: string, b: string, bFormat: string): Promise<{ equal: boolean; output: string }> {
  try {
    const { stdout } = await run('qemu-img', ['compare', '-f', aFormat, '-F', bFormat, a, b]);
    return { equal: true, output: stdout };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { equal: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}
