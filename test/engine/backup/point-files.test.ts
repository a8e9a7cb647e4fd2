import { lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lockFolder, partialName, writeFileAtomic } from '../../../engine/backup/point-files.js';

describe('point files in a folder someone else may write', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bm-pointfiles-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('never writes through a symlink planted at the partial name', async () => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious');
    symlinkSync(victim, join(dir, partialName('m.json')));
    await writeFileAtomic(dir, 'm.json', '{"ok":true}');
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(readFileSync(join(dir, 'm.json'), 'utf8')).toBe('{"ok":true}');
    expect(lstatSync(join(dir, 'm.json')).isFile()).toBe(true);
  });

  it('does not read a lock through a symlink (a stale lock is taken over, the target untouched)', async () => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, `${process.pid}\n`); // would read as a live lock of ours
    symlinkSync(victim, join(dir, '.lock'));
    const release = await lockFolder(dir);
    expect(readFileSync(victim, 'utf8')).toBe(`${process.pid}\n`);
    await release();
  });
});
