import { describe, expect, it } from 'vitest';
import { helperRuntimeDir, helperSocketPath, servedUid } from '../../../engine/protocol/socket-path.js';
import type { SocketPlace } from '../../../engine/protocol/socket-path.js';

/** A machine where only the listed directories exist. */
function place(env: Record<string, string>, uid: number, dirs: string[] = []): SocketPlace {
  return { env, uid, tmpdir: '/tmp', exists: (path) => dirs.includes(path) };
}

describe('the helper socket rule', () => {
  it('uses an absolute $XDG_RUNTIME_DIR first, even when /run/user/UID exists', () => {
    expect(helperSocketPath(place({ XDG_RUNTIME_DIR: '/run/user/1000' }, 1000, ['/run/user/1000']))).toBe('/run/user/1000/blksnap-manager/helper.sock');
    expect(helperSocketPath(place({ XDG_RUNTIME_DIR: '/srv/rt/' }, 1000, ['/run/user/1000']))).toBe('/srv/rt/blksnap-manager/helper.sock');
  });

  it('ignores a relative or empty $XDG_RUNTIME_DIR and takes /run/user/UID when it exists', () => {
    expect(helperSocketPath(place({ XDG_RUNTIME_DIR: 'relative' }, 1000, ['/run/user/1000']))).toBe('/run/user/1000/blksnap-manager/helper.sock');
    expect(helperSocketPath(place({ XDG_RUNTIME_DIR: '' }, 1000, ['/run/user/1000']))).toBe('/run/user/1000/blksnap-manager/helper.sock');
  });

  it('falls back to a per-user directory in the temporary directory without a login session', () => {
    expect(helperRuntimeDir(place({}, 0, ['/run/user/1000']))).toBe('/tmp/blksnap-manager-0');
    expect(helperSocketPath({ env: {}, uid: 1000, tmpdir: '/var/tmp/', exists: () => false })).toBe('/var/tmp/blksnap-manager-1000/helper.sock');
  });

  it('serves the pkexec caller: root under pkexec finds the user\'s socket', () => {
    expect(servedUid({ env: { PKEXEC_UID: '1000' }, uid: 0 })).toBe(1000);
    expect(servedUid({ env: { PKEXEC_UID: 'x' }, uid: 0 })).toBe(0);
    expect(helperSocketPath(place({ PKEXEC_UID: '1000' }, 0, ['/run/user/1000']))).toBe('/run/user/1000/blksnap-manager/helper.sock');
    expect(helperSocketPath(place({ PKEXEC_UID: '1000' }, 0))).toBe('/tmp/blksnap-manager-1000/helper.sock');
  });
});
