import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { handOverSocket, prepareSocketDir, removeOwnSocket, removeStaleSocket, socketIdentity } from '../../../engine/helper/socket-dir.js';
import { isRoot } from '../../helpers/env.js';

const self = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };

describe('socket directory', () => {
  let base: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'bm-sockdir-'));
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('creates a 0700 directory and tightens an existing one', async () => {
    await prepareSocketDir(join(base, 'a'), self);
    expect(statSync(join(base, 'a')).mode & 0o777).toBe(0o700);
    mkdirSync(join(base, 'b'), { mode: 0o755 });
    chmodSync(join(base, 'b'), 0o755);
    await prepareSocketDir(join(base, 'b'), self);
    expect(statSync(join(base, 'b')).mode & 0o777).toBe(0o700);
  });

  it('refuses a symlink or a file in its place', async () => {
    mkdirSync(join(base, 'real'));
    chmodSync(join(base, 'real'), 0o755);
    symlinkSync(join(base, 'real'), join(base, 'link'));
    await expect(prepareSocketDir(join(base, 'link'), self)).rejects.toThrow(/symlink/);
    expect(statSync(join(base, 'real')).mode & 0o777).toBe(0o755);
    writeFileSync(join(base, 'file'), '');
    await expect(prepareSocketDir(join(base, 'file'), self)).rejects.toThrow(/not a directory/);
  });

  it.skipIf(!isRoot)('[root] hands the directory and socket to the owner (PKEXEC_UID)', async () => {
    const owner = { uid: 65534, gid: 65534 };
    const dir = join(base, 'run');
    await prepareSocketDir(dir, owner);
    expect(statSync(dir)).toMatchObject({ uid: 65534, gid: 65534 });
    const path = join(dir, 's.sock');
    const old = process.umask(0o077);
    const server = createServer();
    try {
      await new Promise<void>((r) => server.listen(path, r));
      await handOverSocket(path, owner);
      expect(statSync(path)).toMatchObject({ uid: 65534, gid: 65534 });
    } finally {
      process.umask(old);
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it.skipIf(!isRoot)('[root] refuses a directory that belongs to a third user', async () => {
    const dir = join(base, 'theirs');
    mkdirSync(dir);
    const { chownSync } = await import('node:fs');
    chownSync(dir, 12345, 12345);
    await expect(prepareSocketDir(dir, { uid: 65534, gid: 65534 })).rejects.toThrow(/another user/);
  });

  it('removes a stale socket but not a live one or a regular file', async () => {
    const live = join(base, 'live.sock');
    const server = createServer();
    await new Promise<void>((r) => server.listen(live, r));
    try {
      await expect(removeStaleSocket(live)).rejects.toThrow(/already listening/);
      await expect(removeStaleSocket(live)).rejects.toMatchObject({ errno: 'EBUSY' });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
    writeFileSync(join(base, 'plain'), '');
    await expect(removeStaleSocket(join(base, 'plain'))).rejects.toThrow(/not a socket/);
    await expect(removeStaleSocket(join(base, 'plain'))).rejects.toMatchObject({ errno: 'EEXIST' });
    await removeStaleSocket(join(base, 'absent.sock'));
  });

  it('removes its own socket at shutdown, but not one a successor created at the same path', async () => {
    const path = join(base, 'h.sock');
    const first = createServer();
    await new Promise<void>((r) => first.listen(path, r));
    const own = await socketIdentity(path);
    // the helper stops listening (Node removes the file), and a successor takes the path
    await new Promise<void>((r) => first.close(() => r()));
    const second = createServer();
    await new Promise<void>((r) => second.listen(path, r));
    try {
      await removeOwnSocket(path, own);
      expect(statSync(path).isSocket()).toBe(true);
      await removeOwnSocket(path, await socketIdentity(path));
      expect(existsSync(path)).toBe(false);
      await removeOwnSocket(path, own); // already gone: fine
    } finally {
      await new Promise<void>((r) => second.close(() => r()));
    }
  });
});
