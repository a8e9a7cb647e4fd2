import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultSocketPath as appSocketPath } from '../../../app/bridge/paths.js';
import { defaultSocketPath, findHelperSockets } from '../../../engine/cli/paths.js';

describe('CLI paths', () => {
  let base: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'bm-paths-'));
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('defaults the socket to $XDG_RUNTIME_DIR, else /run/user/UID, else the temporary directory', () => {
    expect(defaultSocketPath({ XDG_RUNTIME_DIR: '/run/user/1000' })).toBe('/run/user/1000/blksnap-manager/helper.sock');
    const uid = process.getuid?.() ?? 0;
    const expected = existsSync(`/run/user/${uid}`) ? `/run/user/${uid}/blksnap-manager/helper.sock` : join(tmpdir(), `blksnap-manager-${uid}`, 'helper.sock');
    expect(defaultSocketPath({ XDG_RUNTIME_DIR: 'relative' })).toBe(expected);
  });

  it('agrees with the app (browser mode, Electron) on every environment', () => {
    for (const env of [{}, { XDG_RUNTIME_DIR: '/run/user/1000' }, { XDG_RUNTIME_DIR: 'relative' }, { XDG_RUNTIME_DIR: base }]) {
      expect(defaultSocketPath(env)).toBe(appSocketPath(env));
    }
  });

  it('finds the helper sockets of other users and the system service, not other files', async () => {
    const root = join(base, 'run-user');
    for (const uid of ['1000', '1001', '1002']) mkdirSync(join(root, uid, 'blksnap-manager'), { recursive: true });
    writeFileSync(join(root, '1001', 'blksnap-manager', 'helper.sock'), 'not a socket');
    const servers = [createServer(), createServer()];
    const live = join(root, '1000', 'blksnap-manager', 'helper.sock');
    const fixed = join(base, 'system.sock');
    await new Promise<void>((r) => servers[0]?.listen(live, r));
    await new Promise<void>((r) => servers[1]?.listen(fixed, r));
    try {
      expect(findHelperSockets(root, [fixed, join(base, 'absent.sock')])).toEqual([fixed, live]);
      expect(findHelperSockets(join(base, 'nothing'), [])).toEqual([]);
    } finally {
      for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    }
  });
});
