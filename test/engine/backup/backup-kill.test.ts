import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { backupPoint } from '../../../engine/backup/backup-point.js';
import { loadPoints } from '../../../engine/backup/chain.js';
import { restorePoint } from '../../../engine/backup/restore.js';
import { verifyPoint } from '../../../engine/backup/verify.js';
import { hasCommand } from '../../helpers/env.js';
import { readerOf } from './cbt-disk.js';
import { killDisk } from './kill-disk.js';
import { run, tempDir } from './sparse-data.js';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
let dir = '';
let cleanup: () => Promise<void> = async () => undefined;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('kill'));
});
afterEach(async () => {
  await cleanup();
});

it('a backup process killed with SIGKILL mid-write leaves the earlier point intact and nothing that looks valid; the next run succeeds', async () => {
  const chain = join(dir, 'chain');
  const { disk, first, second } = killDisk();
  const full = await backupPoint({ dir: chain, source: readerOf(first.image), device: disk.device, cbt: first.cbt, cbtMap: first.cbtMap, kind: 'full' });
  const fullFile = join(chain, full.manifest.image.file);
  const fullSha = createHash('sha256').update(await readFile(fullFile)).digest('hex');

  const child = spawn(process.execPath, ['--import', 'tsx', 'test/engine/backup/backup-child.ts', chain], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((res) => child.once('exit', (_code, signal) => res(signal)));
  await new Promise<void>((res, rej) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      // killed once a few chunks are in the partial file, well before the end
      const m = /progress (\d+) (\d+)\n[^]*progress (\d+) (\d+)\n[^]*progress (\d+) (\d+)\n/.exec(out);
      if (m) res();
    });
    child.once('exit', () => rej(new Error(`the child ended before it was killed: ${out}`)));
  });
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  expect(out).not.toContain('done');

  const names = (await readdir(chain)).sort();
  const partial = names.filter((n) => n.startsWith('.partial-'));
  expect(partial).toHaveLength(1);
  expect(names).toContain('.lock');
  // no new manifest: the chain still has the full only, unchanged and verifying
  expect((await loadPoints(chain)).map((p) => p.id)).toEqual([full.manifest.id]);
  expect(createHash('sha256').update(await readFile(fullFile)).digest('hex')).toBe(fullSha);
  expect((await verifyPoint(chain, full.manifest.id)).ok).toBe(true);
  if (hasCommand('qemu-img')) {
    // the partial image has no qcow2 header yet
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', join(chain, partial[0]!)])).stdout) as { format: string };
    expect(info.format).toBe('raw');
  }

  const next = await backupPoint({ dir: chain, source: readerOf(second.image), device: disk.device, cbt: second.cbt, cbtMap: second.cbtMap, kind: 'incremental' });
  expect(next.leftoversRemoved).toEqual(partial);
  expect(next.manifest.parent).toBe(full.manifest.id);
  expect((await restorePoint(chain, next.manifest.id, join(dir, 'r.raw'))).sha256).toBe(second.sha256);
  expect((await readdir(chain)).filter((n) => n.startsWith('.'))).toEqual([]);
});
