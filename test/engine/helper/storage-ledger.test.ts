import { closeSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CallerFs } from '../../../engine/helper/caller-fs.js';
import { StorageLedger } from '../../../engine/helper/storage-ledger.js';
import type { CreatedFileRecord } from '../../../engine/helper/storage-ledger.js';

const uid = process.getuid?.() ?? 0;
const files = new CallerFs({ uid, gid: process.getgid?.() ?? 0 });

/** Creates `path` the way the helper does: recorded in `ledger` before it has its name. */
async function createRecorded(ledger: StorageLedger, path: string, owner: string, kind: CreatedFileRecord['kind'] = 'storage'): Promise<void> {
  const created = await files.createFile(path, 'test file', (pending) => ledger.recordPending(pending, kind, owner, uid));
  await ledger.settle(created.path, created);
  writeFileSync(created.fd, 'data');
  closeSync(created.fd);
}

function ledgerFile(base: string): unknown[] {
  return JSON.parse(readFileSync(join(base, 'storage-files.json'), 'utf8')) as unknown[];
}

describe('StorageLedger', () => {
  let base: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'bm-ledger-'));
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('has a file on disk in its records before the file has its name, with its inode', async () => {
    const ledger = new StorageLedger(base);
    const path = join(base, 'diff-a');
    let seen: unknown[] = [];
    const created = await files.createFile(path, 'test file', async (pending) => {
      await ledger.recordPending(pending, 'storage', 'id-a', uid);
      expect(existsSync(path)).toBe(false); // not named yet
      seen = ledgerFile(base);
    });
    closeSync(created.fd);
    expect(seen).toEqual([expect.objectContaining({ path, kind: 'storage', owner: 'id-a', uid, dev: created.dev, ino: created.ino })]);
  });

  it('persists created storage files and removes them at the next start (after a crash)', async () => {
    const a = join(base, 'diff-a');
    const b = join(base, 'diff-b');
    const ledger = new StorageLedger(base);
    await createRecorded(ledger, a, 'id-a');
    await createRecorded(ledger, b, 'id-b');
    await ledger.forget(b); // destroyed normally
    expect(ledgerFile(base)).toHaveLength(1);
    // the helper is killed here; a new one starts
    const logs: string[] = [];
    const removed = await new StorageLedger(base).removeLeftovers((m) => logs.push(m));
    expect(removed).toEqual([a]);
    expect(existsSync(a)).toBe(false);
    expect(existsSync(b)).toBe(true);
    expect(logs.join('\n')).toContain(`removed ${a}, the difference storage of snapshot id-a left by a helper that did not shut down cleanly`);
    expect(ledgerFile(base)).toEqual([]);
  });

  it('keeps images that reached the registry and removes unfinished ones', async () => {
    const ledger = new StorageLedger(base);
    await createRecorded(ledger, join(base, 'done.img'), 'done', 'image');
    await createRecorded(ledger, join(base, 'half.img'), 'half', 'image');
    const removed = await new StorageLedger(base).removeLeftovers(() => undefined, (rec) => rec.path === join(base, 'done.img'));
    expect(removed).toEqual([join(base, 'half.img')]);
    expect(existsSync(join(base, 'done.img'))).toBe(true);
  });

  it('removes the temporary state files of an interrupted write, and nothing else in the state directory', async () => {
    writeFileSync(join(base, 'storage-files.json.tmp-4242'), '[');
    writeFileSync(join(base, 'images.json.4242.0a1b2c3d.tmp'), '{');
    writeFileSync(join(base, 'images.json'), '{"version":1,"images":[]}');
    writeFileSync(join(base, 'notes.tmp.txt'), 'mine');
    const removed = await new StorageLedger(base).removeLeftovers(() => undefined);
    expect(removed.sort()).toEqual([join(base, 'images.json.4242.0a1b2c3d.tmp'), join(base, 'storage-files.json.tmp-4242')]);
    expect(existsSync(join(base, 'images.json'))).toBe(true);
    expect(existsSync(join(base, 'notes.tmp.txt'))).toBe(true);
  });

  it('leaves a path alone that now names another file or a symlink', async () => {
    const a = join(base, 'diff-a');
    const c = join(base, 'diff-c');
    const ledger = new StorageLedger(base);
    await createRecorded(ledger, a, 'id-a');
    await createRecorded(ledger, c, 'id-c');
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

  it('removes a file only from the directory it was created in, never through a symlink put in its place', async () => {
    const user = join(base, 'user');
    const victim = join(base, 'victim');
    mkdirSync(user);
    mkdirSync(victim);
    const ledger = new StorageLedger(base);
    await createRecorded(ledger, join(user, 'diff'), 'id-a');
    // the user swaps their directory for a symlink to another one holding a file of that name
    renameSync(join(user, 'diff'), join(victim, 'diff')); // even the very same inode
    renameSync(user, join(base, 'user-moved'));
    symlinkSync(victim, user);
    expect(await new StorageLedger(base).removeLeftovers(() => undefined)).toEqual([]);
    expect(readFileSync(join(victim, 'diff'), 'utf8')).toBe('data');
  });

  it('a file recorded without its inode (no O_TMPFILE) is removed only while empty and its user\'s; otherwise reported', async () => {
    const dir = statSync(base);
    const empty = join(base, 'empty');
    const full = join(base, 'full');
    const ledger = new StorageLedger(base);
    for (const path of [empty, full]) await ledger.recordPending({ path, dirDev: dir.dev, dirIno: dir.ino, identity: null }, 'storage', 'id-x', uid);
    writeFileSync(empty, '');
    writeFileSync(full, 'somebody wrote here');
    const logs: string[] = [];
    expect(await new StorageLedger(base).removeLeftovers((m) => logs.push(m))).toEqual([empty]);
    expect(readFileSync(full, 'utf8')).toBe('somebody wrote here');
    expect(logs.join('\n')).toContain(`left ${full} in place`);
  });

  it('starts from nothing with a missing or damaged ledger', async () => {
    expect(await new StorageLedger(base).removeLeftovers(() => undefined)).toEqual([]);
    writeFileSync(join(base, 'storage-files.json'), '{not json');
    expect(await new StorageLedger(base).removeLeftovers(() => undefined)).toEqual([]);
  });
});
