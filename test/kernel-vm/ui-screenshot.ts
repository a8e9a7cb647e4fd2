/**
 * One screenshot of the UI (browser mode) fed by a helper in the VM test's guest, on
 * the real VAL-7.0 module: the module health line and the heatmap of the real CBT
 * map (guest/serve.ts makes three change numbers). The guest's helper socket reaches
 * the host through qemu's user network (port 7000 forwarded) and a local Unix socket.
 *
 *   sudo npx tsx test/kernel-vm/ui-screenshot.ts   # writes docs/screenshots/vm-val7-heatmap.png
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startWebServer } from '../../app/web/server.js';
import { launchBrowser } from '../helpers/browser.js';
import { DOCS_SCREENSHOT_DIR, gotoScreen } from '../helpers/e2e-page.js';
import { PROJECT_ROOT } from '../helpers/renderer-build.js';
import { prepareGuest } from './guest-image.js';
import { REPO_ROOT } from './initramfs.js';
import { bootGuest } from './qemu-run.js';
import { vmHost } from './vm-prereqs.js';

const run = promisify(execFile);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function main(): Promise<void> {
  const { host, reason } = vmHost();
  if (!host) throw new Error(`cannot run: ${reason}`);
  const staticDir = join(REPO_ROOT, 'renderer', 'dist');
  if (!existsSync(join(staticDir, 'index.html'))) throw new Error('run "npm run build" first (renderer/dist is missing)');
  const guest = await prepareGuest(host);
  const helperPort = await freePort();
  const stopPort = await freePort();
  const abort = new AbortController();
  let serving: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (serving = resolve));
  const boot = bootGuest({
    kernel: host.vmlinuz,
    initrd: guest.initrd,
    disks: guest.disks,
    memoryMb: 2048,
    timeoutMs: 20 * 60_000,
    kernelArgs: 'vmmode=serve',
    extraArgs: [
      '-netdev',
      `user,id=n0,hostfwd=tcp:127.0.0.1:${helperPort}-:7000,hostfwd=tcp:127.0.0.1:${stopPort}-:7001`,
      '-device',
      'virtio-net-pci,netdev=n0',
    ],
    signal: abort.signal,
    onLine: (line) => {
      if (line.startsWith('VMLOG')) process.stdout.write(`guest: ${line.slice(6)}\n`);
      if (line.startsWith('VMLOG serving')) serving();
    },
  });
  let bridge: Server | null = null;
  try {
    await Promise.race([ready, boot.then((r) => Promise.reject(new Error(`the guest stopped:\n${r.serial.slice(-3000)}`)))]);
    const socketPath = join(guest.dir, 'helper.sock');
    const local = createServer((client) => {
      const remote = connect(helperPort, '127.0.0.1');
      client.pipe(remote);
      remote.pipe(client);
      client.on('error', () => remote.destroy());
      remote.on('error', () => client.destroy());
    });
    bridge = local;
    await new Promise<void>((resolve) => local.listen(socketPath, resolve));
    // the helper answers through the forward (a hello and a call; slow under TCG)
    const t = Date.now();
    // (not spawnSync: the forward runs in this process's event loop)
    const probe = await run(process.execPath, [join(REPO_ROOT, 'bin', 'blksnap-manager.mjs'), 'version', '--socket', socketPath], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, BLKSNAP_MANAGER_USE_DIST: '1' },
    });
    process.stdout.write(`helper in the guest answers "version" in ${Date.now() - t} ms: ${probe.stdout.trim()}\n`);
    const web = await startWebServer({ staticDir, helperSocket: socketPath, stateDir: join(guest.dir, 'state'), launch: null, log: () => {} });
    const session = await launchBrowser({ viewport: { width: 1280, height: 860 } });
    try {
      await session.page.goto(web.url);
      await session.page.getByText('Helper connected').waitFor({ timeout: 180_000 });
      await gotoScreen(session.page, 'heatmap');
      const health = session.page.locator('.module-health');
      await health.waitFor({ timeout: 60_000 });
      process.stdout.write(`module health line: ${await health.innerText()}\n`);
      await session.page.getByTestId('heatmap-canvas').waitFor({ timeout: 60_000 });
      await session.page.waitForTimeout(3000);
      const file = join(DOCS_SCREENSHOT_DIR, 'vm-val7-heatmap.png');
      await session.page.screenshot({ path: file });
      process.stdout.write(`wrote ${file.slice(PROJECT_ROOT.length + 1)}\n`);
    } finally {
      await session.close();
      await web.close();
    }
    await new Promise<void>((resolve) => connect(stopPort, '127.0.0.1').on('close', () => resolve()).on('error', () => resolve()));
    const done = await Promise.race([boot, new Promise<null>((r) => setTimeout(() => r(null), 60_000))]);
    if (done === null) abort.abort();
  } finally {
    bridge?.close();
    abort.abort();
    await boot.catch(() => undefined);
    await guest.cleanup();
  }
}

await main();
