/** The packaging files: policy, launcher and unit agree on the installed paths. */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './spawn-daemon.js';

const LAUNCHER = join(REPO, 'packaging/bin/blksnap-manager-helper');
const APP_DIR = '/opt/Blksnap Manager';
const INSTALLED_LAUNCHER = `${APP_DIR}/resources/bin/blksnap-manager-helper`;
const MAIN = `${APP_DIR}/resources/app.asar/dist/engine/cli/main.js`;

describe('packaging', () => {
  it('the polkit action keeps admin authorization and execs the installed launcher', () => {
    const xml = readFileSync(join(REPO, 'packaging/polkit/org.blksnapmanager.helper.policy'), 'utf8');
    expect(xml).toContain('<action id="org.blksnapmanager.helper">');
    expect(xml).toMatch(/<allow_active>auth_admin_keep<\/allow_active>/);
    expect(xml).toContain(`<annotate key="org.freedesktop.policykit.exec.path">${INSTALLED_LAUNCHER}</annotate>`);
  });

  it('the launcher is an executable sh script with fixed absolute paths', () => {
    expect(statSync(LAUNCHER).mode & 0o111).not.toBe(0);
    const text = readFileSync(LAUNCHER, 'utf8');
    expect(text.startsWith('#!/bin/sh\n')).toBe(true);
    expect(text).toContain(`APP_DIR='${APP_DIR}'`);
    expect(text).toContain('MAIN="$APP_DIR/resources/app.asar/dist/engine/cli/main.js"');
    expect(text).toMatch(/^STATE_DIR=\/var\/lib\/blksnap-manager$/m);
    expect(spawnSync('sh', ['-n', LAUNCHER]).status).toBe(0);
  });

  it('the launcher refuses caller-chosen paths and a bad PKEXEC_UID before starting anything', () => {
    const run = (args: string[], env: NodeJS.ProcessEnv = {}) => spawnSync('sh', [LAUNCHER, ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' });
    expect(run(['--socket', '/etc/x.sock'], { PKEXEC_UID: '4000000' })).toMatchObject({ status: 22, stderr: expect.stringContaining('socket is fixed') });
    expect(run(['--bogus'])).toMatchObject({ status: 22, stderr: expect.stringContaining('usage') });
    expect(run(['--driver', 'evil'])).toMatchObject({ status: 22 });
    expect(run(['--driver'])).toMatchObject({ status: 22 });
    expect(run([], { PKEXEC_UID: '0;rm' })).toMatchObject({ status: 1, stderr: expect.stringContaining('invalid PKEXEC_UID') });
    // what the app passes is accepted and reaches the runtime-directory check (no session for this uid)
    const appArgs = ['--socket', '/run/user/4000000/blksnap-manager/helper.sock', '--state-dir', '/home/u/.local/state/blksnap-manager', '--driver', 'embedded', '--exit-with-parent'];
    expect(run(appArgs, { PKEXEC_UID: '4000000' })).toMatchObject({ status: 2, stderr: expect.stringContaining('/run/user/4000000 does not exist') });
  });

  it('the systemd unit runs the same daemon entry with SIGTERM shutdown', () => {
    const unit = readFileSync(join(REPO, 'packaging/systemd/blksnap-manager-helper.service'), 'utf8');
    expect(unit).toContain(`ExecStart="${APP_DIR}/blksnap-manager" "${MAIN}" daemon --socket /run/blksnap-manager/helper.sock --state-dir /var/lib/blksnap-manager`);
    expect(unit).toMatch(/^Environment=ELECTRON_RUN_AS_NODE=1$/m);
    expect(unit).toMatch(/^KillSignal=SIGTERM$/m);
  });
});
