import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ImageWriteSummary, ImageWriter } from '../../../engine/backup/image-writer.js';
import { Qcow2Writer } from '../../../engine/backup/qcow2-writer.js';
import { RawWriter } from '../../../engine/backup/raw-writer.js';

const SIZE = 1024 * 1024;
const writers: [string, (path: string) => Promise<ImageWriter>][] = [
  ['qcow2', (path) => Qcow2Writer.create({ path, virtualSize: SIZE })],
  ['raw', (path) => RawWriter.create({ path, virtualSize: SIZE })],
];

describe.each(writers)('%s writer: work alongside the final sync', (_name, create) => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bm-imagewriter-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('runs whileSyncing with the summary finish returns, on the completed file, and waits for it', async () => {
    const path = join(dir, 'img');
    const w = await create(path);
    await w.write(65536, Buffer.alloc(65536, 7));
    let seen: { summary: ImageWriteSummary; fileSize: number } | null = null;
    let finished = false;
    const summary = await w.finish({
      whileSyncing: async (s) => {
        // the file is complete (tables and header written) when the manifest is made from it
        seen = { summary: s, fileSize: statSync(path).size };
        await new Promise((resolve) => setTimeout(resolve, 20));
        finished = true;
      },
    });
    expect(finished).toBe(true); // finish did not resolve before the work alongside it
    expect(seen).toEqual({ summary, fileSize: summary.fileBytes });
    expect(statSync(path).size).toBe(summary.fileBytes);
  });

  it('rejects when the work alongside fails, and abort then removes the file', async () => {
    const path = join(dir, 'img');
    const w = await create(path);
    await w.write(0, Buffer.alloc(65536, 1));
    await expect(w.finish({ whileSyncing: () => Promise.reject(new Error('ENOSPC: the manifest did not fit')) })).rejects.toThrow(/ENOSPC/);
    await w.abort();
    expect(existsSync(path)).toBe(false);
  });
});
