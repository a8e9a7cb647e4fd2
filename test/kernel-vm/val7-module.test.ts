/**
 * [root][vm] The kernel driver on the real VAL-7.0 module: builds the module from
 * ../shared/peers against the installed Debian cloud kernel's headers, boots that
 * kernel under qemu TCG with an initramfs holding node, qemu-img and the built
 * product, and runs guest/scenario.ts there in one node process (the driver's whole
 * command set, storage forms, CBT against a model of the writes, overflow,
 * append_storage, backups). Each guest step is one test here. docs/kernel-driver.md
 * ("The VM test").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareGuest } from './guest-image.js';
import { bootGuest } from './qemu-run.js';
import type { StepRecord } from './guest/steps.js';
import { vmHost } from './vm-prereqs.js';
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
  'storage form "existing file (helper, as the user): its size is the capacity, left in place": create, take, write, image equals the take, destroy',
  'storage form "directory (helper, as the user): an unnamed file in it, nothing left after destroy": create, take, write, image equals the take, destroy',
  'storage form "block device (helper): claimed exclusively by the module while held": create, take, write, image equals the take, destroy',
  'an existing file or block device larger than the limit: ENOSPC, in words, nothing left held',
  'freeze at take: a file synced just before the take is whole in the image of the mounted work disk',
  'append_storage: a snapshot without storage asks for space and runs on ranges of the spare disk',
  'markdirtyblock marks the read map at once',
  'overflow of a 1 MiB storage: corrupted event, error -28, original intact',
  'cbt after the overflow snapshot',
  'full backup from the image device; qemu-img compare in the guest',
  'incremental backup of known writes; qemu-img compare in the guest',
  'detach, then cbtinfo and detach fail: ENOENT',
  'helper starts with the kernel driver and reports the module health',
  'CLI version prints the module version sysfs reports',
  'CLI devices (tracked from the module), attach, cbtinfo: capacity from sysfs, 64 KiB blocks',
  'the installed bin (bin/blksnap-manager.mjs on dist) prints the same cbtinfo',
  'CLI snapshot_create, take, snapshot_info, readcbtmap bytes, destroy, detach',
  'CLI snapshot on a 2 MiB new-file storage (mapped, append mode): 6 MiB written after take overflow it',
  'CLI storage_grow: a held snapshot grown by 8 MiB takes 6 MiB past its 2 MiB limit; image equals the take; destroy removes the grow file',
  'helper restarted while a grown snapshot is held: it takes the mapped files back, grows again, and destroy removes all three',
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
let cleanup: (() => Promise<void>) | undefined;

describe.skipIf(skip)(title('VAL-7.0 module in a qemu guest'), () => {
  beforeAll(async () => {
    if (!host) return;
    const guest = await prepareGuest(host);
    cleanup = guest.cleanup;
    Object.assign(timings, guest.timings);
    const boot = await bootGuest({
      kernel: host.vmlinuz,
      initrd: guest.initrd,
      disks: guest.disks,
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
    await cleanup?.();
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
