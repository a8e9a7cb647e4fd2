/**
 * The guest's initramfs: busybox, the virtio and VAL-7.0 modules, this machine's
 * node and qemu-img with the shared libraries ldd names, the built product (dist/)
 * with its runtime packages and bin/blksnap-manager.mjs in the installed package's
 * layout under /app, the guest scenario (transpiled from guest/*.ts) and
 * guest/init.sh as /init. Written as an uncompressed newc cpio (the kernel unpacks it
 * fastest, and it is built in a few seconds).
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, cp, mkdir, readFile, readdir, realpath, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';

const run = promisify(execFile);

export const REPO_ROOT = join(import.meta.dirname, '..', '..');
const GUEST_DIR = join(import.meta.dirname, 'guest');

/** Kernel modules (under /lib/modules/KVER) the guest loads before the VAL-7.0 ones, in order. */
export const GUEST_KERNEL_MODULES = [
  'kernel/drivers/virtio/virtio_ring.ko',
  'kernel/drivers/virtio/virtio.ko',
  'kernel/drivers/virtio/virtio_pci_legacy_dev.ko',
  'kernel/drivers/virtio/virtio_pci_modern_dev.ko',
  'kernel/drivers/virtio/virtio_pci.ko',
  'kernel/drivers/block/virtio_blk.ko',
  // the network of the UI screenshot's guest (ui-screenshot.ts)
  'kernel/net/core/failover.ko',
  'kernel/drivers/net/net_failover.ko',
  'kernel/drivers/net/virtio_net.ko',
];

/** Packages bundled into the renderer by vite: dist/engine never imports them. */
const RENDERER_ONLY = new Set(['react', 'react-dom', 'zustand']);

/**
 * Runtime packages of dist/engine: the package's dependencies (so a new one reaches the
 * guest without a second list), less the renderer's; koffi's prebuilt binary lives in
 * @koromix/koffi-linux-x64.
 */
async function runtimePackages(): Promise<string[]> {
  const manifest = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  const deps = Object.keys(manifest.dependencies ?? {}).filter((d) => !RENDERER_ONLY.has(d));
  return [...deps, '@koromix/koffi-linux-x64'];
}

export interface InitramfsInput {
  stagingDir: string;
  output: string;
  busybox: string;
  modulesDir: string;
  /** The built VAL-7.0 modules. */
  val7: { bdevfilter: string; veeamblksnap: string };
  /** Programs copied with their libraries (node, qemu-img). */
  programs: string[];
}

/** The libraries `ldd` lists for a program (absolute paths). */
async function sharedLibraries(program: string): Promise<string[]> {
  const { stdout } = await run('ldd', [program]);
  const libs: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

/** Copies a host file to the same path under `root` (following symlinks). */
async function copyAs(root: string, path: string, from = path): Promise<void> {
  const target = join(root, path);
  await mkdir(dirname(target), { recursive: true });
  await copyFile(await realpath(from), target);
  await chmod(target, 0o755);
}

/** guest/*.ts transpiled to /app/dist/test/kernel-vm/guest/*.js, so their relative imports reach /app/dist/engine. */
async function transpileGuest(appDir: string): Promise<void> {
  const out = join(appDir, 'dist', 'test', 'kernel-vm', 'guest');
  await mkdir(out, { recursive: true });
  for (const name of await readdir(GUEST_DIR)) {
    if (!name.endsWith('.ts')) continue;
    const source = await readFile(join(GUEST_DIR, name), 'utf8');
    const js = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
      fileName: name,
    }).outputText;
    await writeFile(join(out, name.replace(/\.ts$/, '.js')), js);
  }
}

export async function buildInitramfs(input: InitramfsInput): Promise<void> {
  const root = input.stagingDir;
  for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'tmp', 'work', 'lib/modules/vm', 'app']) {
    await mkdir(join(root, d), { recursive: true });
  }
  await copyAs(root, '/bin/busybox', input.busybox);
  await copyFile(join(GUEST_DIR, 'init.sh'), join(root, 'init'));
  await chmod(join(root, 'init'), 0o755);

  for (const rel of GUEST_KERNEL_MODULES) {
    const name = rel.split('/').at(-1) ?? rel;
    await copyFile(join(input.modulesDir, rel), join(root, 'lib/modules/vm', name));
  }
  await copyFile(input.val7.bdevfilter, join(root, 'lib/modules/vm/bdevfilter.ko'));
  await copyFile(input.val7.veeamblksnap, join(root, 'lib/modules/vm/veeamblksnap.ko'));

  for (const program of input.programs) {
    await copyAs(root, program);
    for (const lib of await sharedLibraries(program)) await copyAs(root, lib);
  }

  const app = join(root, 'app');
  // the installed package's layout: bin/blksnap-manager.mjs runs dist/engine/cli/main.js
  await cp(join(REPO_ROOT, 'dist', 'engine'), join(app, 'dist', 'engine'), { recursive: true });
  await copyAs(root, '/app/bin/blksnap-manager.mjs', join(REPO_ROOT, 'bin', 'blksnap-manager.mjs'));
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'blksnap-manager-guest', type: 'module', private: true }));
  const modules = await realpath(join(REPO_ROOT, 'node_modules'));
  for (const pkg of await runtimePackages()) {
    await cp(join(modules, pkg), join(app, 'node_modules', pkg), {
      recursive: true,
      dereference: true,
      // vendored headers, docs and the musl build are not needed at run time
      filter: (src) => !/\/(vendor|doc|musl_x64)(\/|$)/.test(src.slice(join(modules, pkg).length)),
    });
  }
  await transpileGuest(app);
  await writeCpio(root, input.output);
}

/** `find . | cpio -o -H newc` of `root` into `output`. */
async function writeCpio(root: string, output: string): Promise<void> {
  await run('sh', ['-c', 'cd "$1" && find . -print0 | cpio --null -o -H newc --owner=0:0 --quiet > "$2"', 'sh', root, output]);
}
