/** The packaging files: policy, launcher and unit agree on the installed paths. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JSDOM } from 'jsdom';
import { describe, expect, it } from 'vitest';
import { hasCommand } from '../../helpers/env.js';
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

  it('the polkit policy is well-formed XML with the elements in the order of the policyconfig DTD', () => {
    const xml = readFileSync(join(REPO, 'packaging/polkit/org.blksnapmanager.helper.policy'), 'utf8');
    const doc = new new JSDOM('').window.DOMParser().parseFromString(xml, 'application/xml');
    expect(doc.getElementsByTagName('parsererror')).toHaveLength(0);
    expect(doc.doctype?.systemId).toBe('http://www.freedesktop.org/standards/PolicyKit/1/policyconfig.dtd');
    const root = doc.documentElement;
    expect(root.tagName).toBe('policyconfig');
    expect([...root.children].map((e) => e.tagName)).toEqual(['vendor', 'vendor_url', 'action']);
    const action = root.getElementsByTagName('action')[0];
    // DTD: description, message, vendor?, vendor_url?, icon_name?, defaults?, annotate*
    expect([...(action?.children ?? [])].map((e) => e.tagName)).toEqual(['description', 'message', 'icon_name', 'defaults', 'annotate', 'annotate']);
    const defaults = action?.getElementsByTagName('defaults')[0];
    expect([...(defaults?.children ?? [])].map((e) => e.tagName)).toEqual(['allow_any', 'allow_inactive', 'allow_active']);
    for (const v of [...(defaults?.children ?? [])].map((e) => e.textContent)) expect(['no', 'yes', 'auth_self', 'auth_admin', 'auth_self_keep', 'auth_admin_keep']).toContain(v);
  });

  it.skipIf(!hasCommand('xmllint'))('[xmllint] the polkit policy is well-formed for xmllint', () => {
    expect(spawnSync('xmllint', ['--noout', '--nonet', join(REPO, 'packaging/polkit/org.blksnapmanager.helper.policy')]).status).toBe(0);
  });

  it.skipIf(!hasCommand('shellcheck'))('[shellcheck] the launcher and the deb scripts pass shellcheck', () => {
    for (const f of ['packaging/bin/blksnap-manager-helper', 'packaging/bin/blksnap-manager-cli', 'packaging/build/deb-after-install.sh', 'packaging/build/deb-after-remove.sh']) {
      const r = spawnSync('shellcheck', ['-s', 'sh', join(REPO, f)], { encoding: 'utf8' });
      expect(r.stdout, f).toBe('');
    }
  });

  it('the launcher and the deb scripts parse with sh -n; --help exits 0', () => {
    for (const f of ['packaging/bin/blksnap-manager-helper', 'packaging/bin/blksnap-manager-cli', 'packaging/build/deb-after-install.sh', 'packaging/build/deb-after-remove.sh']) {
      expect(spawnSync('sh', ['-n', join(REPO, f)]).status, f).toBe(0);
    }
    const help = spawnSync('sh', [LAUNCHER, '--help'], { env: { PATH: process.env.PATH, PKEXEC_UID: '4000000' }, encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('usage: blksnap-manager-helper');
    expect(help.stdout).toContain('/run/user/4000000/blksnap-manager/helper.sock');
  });

  it.skipIf(!hasCommand('systemd-analyze'))('[systemd-analyze] the unit verifies (with a stand-in for the not-installed binary)', () => {
    const unit = readFileSync(join(REPO, 'packaging/systemd/blksnap-manager-helper.service'), 'utf8');
    const standIn = unit.replace(`ExecStart="${APP_DIR}/blksnap-manager"`, 'ExecStart=/bin/true');
    expect(standIn).not.toBe(unit);
    const dir = mkdtempSync(join(tmpdir(), 'bm-unit-'));
    try {
      const file = join(dir, 'blksnap-manager-helper.service');
      writeFileSync(file, standIn);
      const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the CLI launcher runs the same built CLI as the helper launcher (Electron as Node), and the deb links it', () => {
    const cli = join(REPO, 'packaging/bin/blksnap-manager-cli');
    expect(statSync(cli).mode & 0o111).not.toBe(0);
    const text = readFileSync(cli, 'utf8');
    expect(text.startsWith('#!/bin/sh\n')).toBe(true);
    expect(text).toContain(`APP_DIR='${APP_DIR}'`);
    expect(text).toContain('exec "$APP_DIR/blksnap-manager" "$APP_DIR/resources/app.asar/dist/engine/cli/main.js" "$@"');
    expect(text).toMatch(/^export ELECTRON_RUN_AS_NODE$/m);
    expect(readFileSync(join(REPO, 'packaging/build/deb-after-install.sh'), 'utf8')).toContain('ln -sf "$RES/bin/blksnap-manager-cli" /usr/bin/blksnap-manager-cli');
    expect(readFileSync(join(REPO, 'packaging/build/deb-after-remove.sh'), 'utf8')).toContain('/usr/bin/blksnap-manager-cli');
  });
});
