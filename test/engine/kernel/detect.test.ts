/**
 * Module detection from a fake /dev, /proc and /sys tree: the dialect is decided
 * from files only, and what to install is said when nothing usable is found.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { detectKernelModule } from '../../../engine/kernel/detect.js';
import { chooseDriverKind, createKernelDriver } from '../../../engine/helper/driver-select.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'detect-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function put(path: string, text = ''): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
}

describe('detectKernelModule', () => {
  it('nothing loaded: not loaded, no dialect, and says to install blksnap-dkms 7.x; the helper picks the embedded engine', async () => {
    put('proc/misc', ' 59 memory_bandwidth\n');
    const h = detectKernelModule({ root });
    expect(h).toMatchObject({ loaded: false, dialect: null, filter: null, bdevfilter: false, controlPath: null });
    expect(h.advice).toMatch(/blksnap-dkms 7\.x.*modprobe bdevfilter && modprobe veeamblksnap/);
    expect(chooseDriverKind('auto', h)).toBe('embedded');
    await expect(createKernelDriver(h)).rejects.toThrow(/ENOENT: no blksnap kernel module is loaded: install blksnap-dkms/);
  });

  it('VAL-7.0 with bdevfilter (as measured: misc 123 veeamblksnap, 124 bdevfilter)', () => {
    put('dev/veeamblksnap');
    put('dev/bdevfilter');
    put('proc/misc', '123 veeamblksnap\n124 bdevfilter\n');
    put('sys/module/veeamblksnap/version', '7.0.0.0\n');
    put('sys/module/bdevfilter/version', '7.0.0.0\n');
    const h = detectKernelModule({ root });
    expect(h).toMatchObject({
      loaded: true,
      dialect: 'val7',
      moduleVersion: '7.0.0.0',
      filter: 'bdevfilter',
      bdevfilter: true,
      controlPath: '/dev/veeamblksnap',
      advice: null,
    });
    expect(h.summary).toBe('veeamblksnap 7.0.0.0 (VAL-7 dialect) is loaded; bdevfilter is loaded');
    expect(chooseDriverKind('auto', h)).toBe('kernel');
  });

  it('VAL-7.0 without bdevfilter: the dialect is known but the helper does not pick it, and says to load bdevfilter', () => {
    put('dev/veeamblksnap');
    put('sys/module/veeamblksnap/version', '7.0.0.0\n');
    const h = detectKernelModule({ root });
    expect(h).toMatchObject({ dialect: 'val7', bdevfilter: false });
    expect(h.advice).toMatch(/modprobe bdevfilter/);
    expect(chooseDriverKind('auto', h)).toBe('embedded');
  });

  it('VAL-6 (blk_snap ABI, a char device in /proc/devices): loaded but unsupported', () => {
    put('dev/veeamblksnap');
    put('proc/devices', 'Character devices:\n  1 mem\n248 veeamblksnap\n');
    put('sys/module/veeamblksnap/version', '6.1.2.1781\n');
    const h = detectKernelModule({ root });
    expect(h).toMatchObject({ loaded: true, dialect: null, moduleVersion: '6.1.2.1781', controlPath: null });
    expect(h.summary).toMatch(/older blk_snap ABI/);
    expect(h.advice).toMatch(/^replace it: install blksnap-dkms 7\.x/);
  });

  it('/dev/blksnap-control on a 6.15+ kernel is lk6.15, below it v6', () => {
    put('dev/blksnap-control');
    put('sys/module/blksnap/version', '2.0.0.0\n');
    put('proc/sys/kernel/osrelease', '6.15.2-arch1\n');
    expect(detectKernelModule({ root })).toMatchObject({ dialect: 'lk6.15', filter: 'block-device', controlPath: '/dev/blksnap-control' });
    expect(detectKernelModule({ root, kernelRelease: '6.7.0-rc1' })).toMatchObject({ dialect: 'v6' });
    expect(detectKernelModule({ root, kernelRelease: '7.0.1' })).toMatchObject({ dialect: 'lk6.15' });
  });

  it('the older series parameter free_diff_buffer_pool_size marks v6 even on a new kernel', () => {
    put('dev/blksnap-control');
    put('sys/module/blksnap/parameters/free_diff_buffer_pool_size', '128\n');
    expect(detectKernelModule({ root, kernelRelease: '6.16.0' })).toMatchObject({ dialect: 'v6' });
  });
});
