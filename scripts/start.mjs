#!/usr/bin/env node
// `npm start`: builds, then launches the Electron app when its binary is installed,
// otherwise serves browser mode (the same UI on 127.0.0.1 with a token) on the
// embedded engine, starting a helper if none runs, and prints the URL to open and
// where the helper is (it keeps running after Ctrl+C) and its lab disks.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

function electronBinary() {
  try {
    const p = require('electron');
    return typeof p === 'string' && existsSync(p) ? p : null;
  } catch {
    return null;
  }
}

run('npm', ['run', '--silent', 'build']);

const electron = electronBinary();
const args = process.argv.slice(2);
let child;
if (electron && !args.includes('--browser')) {
  console.log('Starting the Electron app…');
  // the notes browser mode prints too, from the build just made (one rule for the paths)
  const { helperNotes } = await import('../dist/app/bridge/helper-notes.js');
  const { defaultSocketPath, defaultStateDir } = await import('../dist/app/bridge/paths.js');
  console.log(helperNotes({ socketPath: defaultSocketPath(), stateDir: defaultStateDir(), defaultSocket: true }).join('\n'));
  child = spawn(electron, [root, ...args], { cwd: root, stdio: 'inherit' });
} else {
  const web = join(root, 'dist/app/web/main.js');
  if (!existsSync(web)) {
    console.log('Electron binary not installed, and browser mode is not built yet (it arrives with the desktop-app issue).');
    console.log('Meanwhile the engine is usable through the CLI: see docs/cli.md.');
    process.exit(0);
  }
  if (!electron) console.log('Electron binary not installed: starting browser mode.');
  child = spawn(process.execPath, [web, ...args.filter((a) => a !== '--browser')], { cwd: root, stdio: 'inherit' });
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(signal ? 1 : (code ?? 0)));
