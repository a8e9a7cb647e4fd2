import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageLedger, removeIfSameFile } from '../../../engine/helper/storage-ledger.js';

describe('StorageLedger', () => {
  let base: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'bm-ledger-'));
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('persists created storage files and removes them at the next start (after a crash)', async () => {
    const a = join(base, 'diff-a');
    const b = join(base, 'diff-b');
    writeFileSync(a, 'x');
    writeFileSync(b, 'x');
    const ledger = new StorageLedger(base);
    await ledger.add(a, 'id-a');
    await ledger.add(b, 'id-b');
    await ledger.forget(b); // destroyed normally
    expect(JSON.parse(readFileSync(join(base, 'storage-files.json'), 'utf8'))).toHaveLength(1);
    // the helper is killed here; a new one starts
    const logs: string[] = [];
    const removed = await new StorageLedger(base).removeLeftovers((m) => logs.push(m));
    expect(removed).toEqual([a]);
    expect(existsSync(a)).toBe(false);
    expect(existsSync(b)).toBe(true);
    expect(logs.join('\n')).toContain(`removed ${a}, the difference storage of snapshot id-a`);
    expect(JSON.parse(readFileSync(join(base, 'storage-files.json'), 'utf8'))).toEqual([]);
  });

  it('leaves a path alone that now names another file or a symlink', async () => {
    const a = join(base, 'diff-a');
    const c = join(base, 'diff-c');
    writeFileSync(a, 'x');
    writeFileSync(c, 'x');
    const ledger = new StorageLedger(base);
    await ledger.add(a, 'id-a');
    await ledger.add(c, 'id-c');
    // someone replaced diff-a by another file, and diff-c by a symlink to a precious file
    renameSync(a, join(base, 'moved'));
    writeFileSync(a, 'another file');
    writeFileSync(join(base, 'precious'), 'keep');
    rmSync(c);
    symlinkSync(join(base, 'precious'), c);
    expect(await new StorageLedger(base).removeLeftovers(() => undefined)).toEqual([]);
    expect(readFileSync(a, 'utf8')).toBe('another file');
    expect(readFileSync(join(base, 'precious'), 'utf8')).toBe('keep');
  });

  it('records a file only inside the directory that was checked, and removes it only from there', async () => {
    const user = join(base, 'user');
    const victim = join(base, 'victim');
    mkdirSync(user);
    mkdirSync(victim);
    const checked = statSync(user);
    const dir = { dev: checked.dev, ino: checked.ino };
    writeFileSync(join(user, 'diff'), '');
    writeFileSync(join(victim, 'diff'), 'precious');
    // the directory was swapped for a symlink after the check: nothing is recorded
    renameSync(user, join(base, 'user-moved'));
    symlinkSync(victim, user);
    const ledger = new StorageLedger(base);
    await expect(ledger.add(join(user, 'diff'), 'id-a', dir)).rejects.toThrow(/no longer the file/);
    expect(ledger.paths).toEqual([]);
    // put back: recorded with its directory, and removed through it
    rmSync(user);
    renameSync(join(base, 'user-moved'), user);
    const identity = await ledger.add(join(user, 'diff'), 'id-a', dir);
    expect(identity).toMatchObject({ dirDev: dir.dev, dirIno: dir.ino });
    expect(await removeIfSameFile(join(user, 'diff'), identity)).toBe(true);
    expect(existsSync(join(user, 'diff'))).toBe(false);
    expect(readFileSync(join(victim, 'diff'), 'utf8')).toBe('precious');
  });

  it('starts from nothing with a missing or damaged ledger', async () => {
    expect(await new StorageLedger(base).removeLeftovers(() => undefined)).toEqual([]);
    writeFileSync(join(base, 'storage-files.json'), '{not json');
    expect(await new StorageLedger(base).removeLeftovers(() => undefined)).toEqual([]);
    expect(await removeIfSameFile(join(base, 'absent'), null)).toBe(false);
  });
});
