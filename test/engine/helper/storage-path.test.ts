import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkDiffStoragePath } from '../../../engine/helper/storage-path.js';
import { isRoot } from '../../helpers/env.js';

const uid = process.getuid?.() ?? 0;

describe('checkDiffStoragePath', () => {
  let base: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'bm-storage-'));
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('accepts a new file in a private directory and normalizes the path', async () => {
    await expect(checkDiffStoragePath(join(base, 'x', '..', 'diff'), uid)).resolves.toBe(join(base, 'diff'));
  });

  it('accepts a sticky world-writable directory (like /tmp)', async () => {
    const dir = join(base, 'sticky');
    mkdirSync(dir);
    chmodSync(dir, 0o1777);
    await expect(checkDiffStoragePath(join(dir, 'diff'), uid)).resolves.toBe(join(dir, 'diff'));
  });

  it('refuses symlinks (even dangling), existing files, missing or unsafe directories', async () => {
    symlinkSync(join(base, 'nowhere'), join(base, 'dangling'));
    writeFileSync(join(base, 'exists'), '');
    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    await expect(checkDiffStoragePath(join(base, 'dangling'), uid)).rejects.toMatchObject({ errno: 'ELOOP' });
    await expect(checkDiffStoragePath(join(base, 'exists'), uid)).rejects.toMatchObject({ errno: 'EEXIST' });
    await expect(checkDiffStoragePath(join(base, 'missing', 'diff'), uid)).rejects.toMatchObject({ errno: 'ENOENT' });
    await expect(checkDiffStoragePath(join(base, 'exists', 'diff'), uid)).rejects.toMatchObject({ errno: 'ENOTDIR' });
    await expect(checkDiffStoragePath(join(open, 'diff'), uid)).rejects.toMatchObject({ errno: 'EACCES' });
    await expect(checkDiffStoragePath('relative', uid)).rejects.toMatchObject({ errno: 'EINVAL' });
    await expect(checkDiffStoragePath(open, uid)).rejects.toMatchObject({ errno: 'EISDIR', message: expect.stringContaining(`name a new file in it (e.g. ${join(open, 'diff0')})`) });
    await expect(checkDiffStoragePath('/', uid)).rejects.toMatchObject({ errno: 'EINVAL' });
  });

  it.skipIf(!isRoot)("[root] refuses a directory of a user other than root and the helper's owner", async () => {
    const dir = join(base, 'other');
    mkdirSync(dir);
    chownSync(dir, 12345, 12345);
    await expect(checkDiffStoragePath(join(dir, 'diff'), 65534)).rejects.toMatchObject({ errno: 'EACCES' });
    await expect(checkDiffStoragePath(join(dir, 'diff'), 12345)).resolves.toBe(join(dir, 'diff'));
  });
});
