import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PKEXEC, helperLaunchCommand, packagedSocketPath } from '../../../app/bridge/launch.js';

const ROOT = resolve(import.meta.dirname, '../../..');
/** electron-builder's deb installs the app in /opt/<productName>. */
const DEB_RESOURCES = '/opt/Blksnap Manager/resources';
const LAUNCHER = `${DEB_RESOURCES}/bin/blksnap-manager-helper`;
const packaged = {
  packaged: true,
  resourcesPath: DEB_RESOURCES,
  uid: 1000,
  socketPath: '/run/user/1000/blksnap-manager/helper.sock',
  stateDir: '/var/lib/blksnap-manager',
};

describe('helperLaunchCommand', () => {
  it('packaged, as a user: pkexec on the absolute launcher path, with an argument list', () => {
    const cmd = helperLaunchCommand(packaged);
    expect(cmd).toEqual({
      command: '/usr/bin/pkexec',
      args: [LAUNCHER, '--driver', 'auto', '--socket', '/run/user/1000/blksnap-manager/helper.sock'],
      env: {},
    });
    expect(cmd.command).toBe(PKEXEC);
    // "Blksnap Manager" keeps its space inside one argument: no shell ever parses this
    expect(cmd.args[0]).toContain(' ');
    expect(cmd.args.some((a) => /^(sh|bash|-c)$/.test(a))).toBe(false);
  });

  it('packaged: the launcher is the path the polkit action authorizes', () => {
    const policy = readFileSync(join(ROOT, 'packaging/polkit/org.blksnapmanager.helper.policy'), 'utf8');
    expect(policy).toContain(`<annotate key="org.freedesktop.policykit.exec.path">${LAUNCHER}</annotate>`);
  });

  it('packaged: the launcher accepts the arguments the app passes (and fixes the same socket)', () => {
    const script = join(ROOT, 'packaging/bin/blksnap-manager-helper');
    const cmd = helperLaunchCommand({ ...packaged, uid: 4_000_000, socketPath: packagedSocketPath(4_000_000), driver: 'embedded' });
    // no session for this uid: the launcher gets past argument checks and stops at the runtime directory
    const run = spawnSync('sh', [script, ...cmd.args.slice(1)], { env: { PATH: process.env.PATH, PKEXEC_UID: '4000000' }, encoding: 'utf8' });
    expect(run.stderr).toContain('/run/user/4000000 does not exist');
    expect(run.status).toBe(2);
  });

  it('packaged, already root: the launcher directly, no pkexec', () => {
    const cmd = helperLaunchCommand({ ...packaged, uid: 0, socketPath: packagedSocketPath(0) });
    expect(cmd).toEqual({ command: LAUNCHER, args: ['--driver', 'auto', '--socket', '/run/user/0/blksnap-manager/helper.sock'], env: {} });
  });

  it('packaged: refuses a socket or state dir the launcher would not use', () => {
    expect(() => helperLaunchCommand({ ...packaged, socketPath: '/tmp/x/helper.sock' })).toThrow(/listens on \/run\/user\/1000/);
    expect(() => helperLaunchCommand({ ...packaged, stateDir: '/home/me/.local/state/blksnap-manager' })).toThrow(/\/var\/lib/);
  });

  it('development: this Node (or Electron as Node) on bin/blksnap-manager.mjs daemon', () => {
    const cmd = helperLaunchCommand({
      ...packaged,
      packaged: false,
      socketPath: '/tmp/run/helper.sock',
      stateDir: '/home/me/.local/state/blksnap-manager',
      execPath: '/usr/bin/node',
      projectRoot: '/home/me/blksnap-manager',
      driver: 'embedded',
    });
    expect(cmd).toEqual({
      command: '/usr/bin/node',
      args: [
        '/home/me/blksnap-manager/bin/blksnap-manager.mjs',
        'daemon',
        '--socket',
        '/tmp/run/helper.sock',
        '--state-dir',
        '/home/me/.local/state/blksnap-manager',
        '--driver',
        'embedded',
      ],
      env: { ELECTRON_RUN_AS_NODE: '1' },
    });
  });

  it('refuses relative paths and bad uids', () => {
    expect(() => helperLaunchCommand({ ...packaged, resourcesPath: 'resources' })).toThrow(/absolute/);
    expect(() => helperLaunchCommand({ ...packaged, socketPath: 'helper.sock' })).toThrow(/absolute/);
    expect(() => helperLaunchCommand({ ...packaged, packaged: false, stateDir: '~/.local/state' })).toThrow(/absolute/);
    expect(() => helperLaunchCommand({ ...packaged, uid: -1 })).toThrow(/uid/);
  });
});
