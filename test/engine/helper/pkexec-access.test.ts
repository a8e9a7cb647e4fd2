/**
 * The helper started through pkexec (as root, PKEXEC_UID set): only that user (and
 * root) can connect; another user is refused by the socket directory's permissions
 * and told whose helper it is.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCommand, isRoot } from '../../helpers/env.js';
import { REPO, spawnDaemon } from './spawn-daemon.js';
import type { SpawnedDaemon } from './spawn-daemon.js';

const NOBODY = 65534;
const STRANGER = 42424; // a uid with no passwd entry

function cliAs(uid: number, gid: number, args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', process.execPath, join(REPO, 'bin/blksnap-manager.mjs'), ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: process.env.PATH, HOME: '/nonexistent' },
  });
}

describe.skipIf(!isRoot || !hasCommand('setpriv'))('[root][setpriv] helper under PKEXEC_UID: who may connect', () => {
  let d: SpawnedDaemon;

  beforeAll(async () => {
    d = await spawnDaemon([], { PKEXEC_UID: String(NOBODY) });
    chmodSync(d.dir, 0o755); // the temporary directory itself is no barrier; the socket directory is
  });

  afterAll(async () => {
    await d?.cleanup();
  });

  it('hands the 0700 socket directory and the 0700 socket to the PKEXEC_UID user', () => {
    const dir = statSync(dirname(d.socketPath));
    expect(dir).toMatchObject({ uid: NOBODY, gid: NOBODY });
    expect(dir.mode & 0o777).toBe(0o700);
    const sock = statSync(d.socketPath);
    expect(sock).toMatchObject({ uid: NOBODY, gid: NOBODY });
    expect(sock.mode & 0o077).toBe(0);
  });

  it('a client running as that user connects', () => {
    const r = cliAs(NOBODY, NOBODY, ['version', '--socket', d.socketPath]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('2.0.0.0');
    expect(r.status).toBe(0);
  });

  it('another user is refused with EACCES (13), told whose helper it is and what to do', () => {
    const r = cliAs(STRANGER, STRANGER, ['version', '--socket', d.socketPath]);
    expect(r.status).toBe(13);
    expect(r.stderr).toContain(`EACCES: permission denied connecting to the helper at ${d.socketPath}: that helper serves nobody (uid ${NOBODY}) (and root) only`);
    expect(r.stderr).toContain(`this command runs as uid ${STRANGER}`);
    expect(r.stderr).toContain('pkexec blksnap-manager-helper');
    const j = cliAs(STRANGER, STRANGER, ['version', '--json', '--socket', d.socketPath]);
    expect(JSON.parse(j.stderr)).toMatchObject({ error: { errno: 'EACCES' } });
  });
});
