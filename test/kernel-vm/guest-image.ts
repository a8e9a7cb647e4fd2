/**
 * Everything a guest boot needs, shared by the VM test and the UI screenshot: the
 * built product, the VAL-7.0 modules (cached), the initramfs and the three disks
 * (vda: 32 MiB of random data, the original; vdb: an ext4 work disk; vdc: a 32 MiB
 * spare disk for append_storage; vdd: a 32 MiB spare disk for the block-device
 * storage form), in a temporary directory that cleanup() removes.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureDist } from './dist-build.js';
import { buildInitramfs } from './initramfs.js';
import { buildVal7Modules } from './module-build.js';
import { PEERS_VAL7_MODULE } from './vm-prereqs.js';
import type { VmHost } from './vm-prereqs.js';

const run = promisify(execFile);

export interface GuestImage {
  dir: string;
  initrd: string;
  disks: string[];
  timings: Record<string, number>;
  cleanup(): Promise<void>;
}

export async function prepareGuest(host: VmHost): Promise<GuestImage> {
  const timings: Record<string, number> = {};
  timings.distBuildMs = await ensureDist();
  const modules = await buildVal7Modules(PEERS_VAL7_MODULE, host.kbuild, host.kernelRelease);
  timings.moduleBuildMs = modules.ms;
  timings.moduleCached = modules.cached ? 1 : 0;

  const dir = await mkdtemp(join(tmpdir(), 'val7-vm-'));
  try {
    const t = Date.now();
    const original = join(dir, 'original.raw');
    await writeFile(original, randomBytes(32 * 1024 * 1024));
    const work = join(dir, 'work.ext4');
    await run('truncate', ['-s', '512M', work]);
    await run('mkfs.ext4', ['-q', '-F', work]);
    const spare = join(dir, 'spare.raw');
    await run('truncate', ['-s', '32M', spare]);
    const spareStorage = join(dir, 'spare-storage.raw');
    await run('truncate', ['-s', '32M', spareStorage]);
    const initrd = join(dir, 'initrd.cpio');
    await buildInitramfs({
      stagingDir: join(dir, 'root'),
      output: initrd,
      busybox: host.busybox,
      modulesDir: host.modulesDir,
      val7: modules,
      programs: [process.execPath, '/usr/bin/qemu-img'],
    });
    await rm(join(dir, 'root'), { recursive: true, force: true });
    timings.initramfsBuildMs = Date.now() - t;
    return { dir, initrd, disks: [original, work, spare, spareStorage], timings, cleanup: () => rm(dir, { recursive: true, force: true }) };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
