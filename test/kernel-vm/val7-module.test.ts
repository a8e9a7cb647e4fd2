/**
 * [root][vm] The kernel driver on the real VAL-7.0 module: builds the module from
 * ../shared/peers against the installed Debian cloud kernel's headers, boots that
 * kernel under qemu TCG with an initramfs holding node, qemu-img and the built
 * product, and runs guest/scenario.ts there in one node process (the driver's whole
 * command set, storage forms, CBT against a model of the writes, overflow,
 * append_storage, backups). Each guest step is one test here. docs/kernel-driver.md
 * ("The VM test").
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDist } from './dist-build.js';
import { buildInitramfs } from './initramfs.js';
import { buildVal7Modules } from './module-build.js';
import { bootGuest } from './qemu-run.js';
import type { StepRecord } from './guest/steps.js';
import { PEERS_VAL7_MODULE, vmHost } from './vm-prereqs.js';

const run = promisify(execFile);
const { host, reason } = vmHost();
const skip = host === null;
const title = (name: string): string => (skip ? `[root][vm] ${name} (skipped: ${reason})` : `[root][vm] ${name}`);

/** Every step the guest scenario must report, in order. */
const EXPECTED_STEPS = [
  'detect: VAL-7 module and bdevfilter',
  'version',
  'attach (bdevfilter) and attach again: EALREADY',
  'cbtinfo and cbtmap after attach',
  'storage form "new file": create, take, write, image equals the take, destroy',
  'storage form "file the caller created (descriptor)": create, take, write, image equals the take, destroy',
  'append_storage: a snapshot without storage asks for space and runs on ranges of the spare disk',
  'markdirtyblock marks the read map at once',
  'overflow of a 1 MiB storage: corrupted event, error -28, original intact',
  'cbt after the overflow snapshot',
  'full backup from the image device; qemu-img compare in the guest',
  'incremental backup of known writes; qemu-img compare in the guest',
  'detach, then cbtinfo and detach fail: ENOENT',
  'helper starts with the kernel driver',
  'CLI version prints the module version sysfs reports',
  'CLI attach and cbtinfo: capacity from sysfs, 64 KiB blocks, changes_number 0',
  'CLI snapshot_create, take, snapshot_info, readcbtmap bytes, destroy, detach',
];

interface GuestResult {
  steps: StepRecord[];
  aborted?: string;
  scenarioMs: number;
  dmesg: string;
}

const timings: Record<string, number> = {};
let result: GuestResult | null = null;
let serial = '';
let workDir = '';

describe.skipIf(skip)(title('VAL-7.0 module in a qemu guest'), () => {
  beforeAll(async () => {
    if (!host) return;
    timings.distBuildMs = await ensureDist();
    const modules = await buildVal7Modules(PEERS_VAL7_MODULE, host.kbuild, host.kernelRelease);
    timings.moduleBuildMs = modules.ms;
    timings.moduleCached = modules.cached ? 1 : 0;

    workDir = await mkdtemp(join(tmpdir(), 'val7-vm-'));
    const t = Date.now();
    const original = join(workDir, 'original.raw');
    await writeFile(original, randomBytes(32 * 1024 * 1024));
    const work = join(workDir, 'work.ext4');
    await run('truncate', ['-s', '512M', work]);
    await run('mkfs.ext4', ['-q', '-F', work]);
    const spare = join(workDir, 'spare.raw');
    await run('truncate', ['-s', '32M', spare]);
    const initrd = join(workDir, 'initrd.cpio');
    await buildInitramfs({
      stagingDir: join(workDir, 'root'),
      output: initrd,
      busybox: host.busybox,
      modulesDir: host.modulesDir,
      val7: modules,
      programs: [process.execPath, '/usr/bin/qemu-img'],
    });
    await rm(join(workDir, 'root'), { recursive: true, force: true });
    timings.initramfsBuildMs = Date.now() - t;

    const boot = await bootGuest({
      kernel: host.vmlinuz,
      initrd,
      disks: [original, work, spare],
      memoryMb: 2048,
      timeoutMs: 12 * 60_000,
      onLine: (line) => {
        if (line.startsWith('VMLOG')) process.stdout.write(`  guest: ${line.slice(6)}\n`);
      },
    });
    serial = boot.serial;
    timings.guestTotalMs = boot.ms;
    const ready = /VMLOG guest ready after ([\d.]+) s/.exec(serial);
    if (ready?.[1]) timings.guestBootMs = Math.round(Number(ready[1]) * 1000);
    const line = serial.split(/\r?\n/).find((l) => l.startsWith('VMRESULT '));
    if (line) {
      result = JSON.parse(line.slice('VMRESULT '.length)) as GuestResult;
      timings.scenarioMs = result.scenarioMs;
    }
    process.stdout.write(`VM test timings (ms): ${JSON.stringify(timings)}\n`);
  }, 20 * 60_000);

  afterAll(async () => {
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it(title('the guest boots and reports the scenario'), () => {
    expect(result, `no VMRESULT line on the serial console; its tail:\n${serial.slice(-6000)}`).not.toBeNull();
    expect(result?.aborted, `scenario aborted; dmesg:\n${result?.dmesg ?? ''}`).toBeUndefined();
    expect(result?.steps.map((s) => s.name)).toEqual(EXPECTED_STEPS);
  });

  for (const name of EXPECTED_STEPS) {
    it(title(name), () => {
      const step = result?.steps.find((s) => s.name === name);
      expect(step, 'the guest did not run this step').toBeDefined();
      expect(step?.error ?? null, JSON.stringify(step?.detail)).toBeNull();
      expect(step?.ok).toBe(true);
    });
  }

  it(title('the kernel logged no warning or bug'), () => {
    expect(result).not.toBeNull();
    expect(result?.dmesg ?? '').not.toMatch(/WARNING:|BUG:|Oops|Call Trace/);
  });
});
