/**
 * The real ioctl path (koffi -> libc ioctl): errno mapping on /dev/null, and
 * "[root]" block ioctls on a loop device, which go through exactly the path the
 * blksnap requests take (layer memory, async call, errno from the worker).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBlksnapError } from '../../../engine/abi/errno.js';
import { O_RDONLY } from '../../../engine/kernel/ioctl-layer.js';
import { BLKFILTER_ATTACH, BLKGETSIZE64, BLKPBSZGET, BLKSSZGET } from '../../../engine/kernel/ioctl-numbers.js';
import { encodeBlkfilterName } from '../../../engine/kernel/abi-structs.js';
import { KoffiIoctlLayer } from '../../../engine/kernel/koffi-ioctl-layer.js';
import { KernelDriver } from '../../../engine/kernel/kernel-driver.js';
import { createKernelDriver } from '../../../engine/kernel/create.js';
import { canUseLoop, hasCommand } from '../../helpers/env.js';

const MiB = 1024 * 1024;

describe('KoffiIoctlLayer', () => {
  it('loads libc ioctl through koffi and maps errno (ENOTTY on /dev/null)', async () => {
    const layer = new KoffiIoctlLayer();
    const fd = await layer.open('/dev/null', O_RDONLY);
    const mem = layer.alloc(8);
    try {
      expect(mem.address).toBeGreaterThan(0n);
      expect(mem.buffer.length).toBe(8);
      const err = await layer.ioctl(fd, BLKGETSIZE64, mem.buffer).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isBlksnapError(err) && err.errno).toBe('ENOTTY');
      expect(String(err)).toMatch(/BLKGETSIZE64/);
    } finally {
      layer.free(mem);
      await layer.close(fd);
    }
  });

  it('descriptors are opened close-on-exec (not inherited by lsblk, losetup, ...)', async () => {
    const layer = new KoffiIoctlLayer();
    const fd = await layer.open('/dev/null', O_RDONLY);
    try {
      const flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
      expect(flags).toBeDefined();
      expect(parseInt(flags ?? '0', 8) & 0o2000000).toBe(0o2000000); // O_CLOEXEC
    } finally {
      await layer.close(fd);
    }
  });

  it('open of a missing path rejects with ENOENT', async () => {
    const layer = new KoffiIoctlLayer();
    await expect(layer.open('/nonexistent/blksnap-test', O_RDONLY)).rejects.toMatchObject({ errno: 'ENOENT' });
  });

  it.skipIf(existsSync('/dev/blksnap-control'))(
    'the driver on a machine without the module: version() is a clear ENOENT',
    async () => {
      const driver = new KernelDriver({ layer: new KoffiIoctlLayer() });
      await expect(driver.version()).rejects.toThrow(/ENOENT: \/dev\/blksnap-control does not exist: .*module is not loaded/);
      await driver.close();
    },
  );
});

describe.skipIf(!canUseLoop || !hasCommand('losetup'))('[root] block ioctls on a loop device (losetup)', () => {
  let dir = '';
  let loop = '';

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'koffi-loop-'));
    const image = join(dir, 'disk.img');
    writeFileSync(image, '');
    execFileSync('truncate', ['-s', String(64 * MiB), image]);
    loop = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
  });

  afterAll(() => {
    if (loop) execFileSync('losetup', ['-d', loop]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('[root] BLKGETSIZE64, BLKSSZGET and BLKPBSZGET through koffi', async () => {
    const layer = new KoffiIoctlLayer();
    const fd = await layer.open(loop, O_RDONLY);
    const mem = layer.alloc(8);
    try {
      mem.buffer.fill(0xff);
      expect(await layer.ioctl(fd, BLKGETSIZE64, mem.buffer)).toBe(0);
      expect(mem.buffer.readBigUInt64LE(0)).toBe(BigInt(64 * MiB));
      const sys = `/sys/block/${basename(loop)}/queue`;
      mem.buffer.fill(0);
      await layer.ioctl(fd, BLKSSZGET, mem.buffer);
      expect(mem.buffer.readInt32LE(0)).toBe(Number(readFileSync(`${sys}/logical_block_size`, 'utf8')));
      mem.buffer.fill(0);
      await layer.ioctl(fd, BLKPBSZGET, mem.buffer);
      expect(mem.buffer.readUInt32LE(0)).toBe(Number(readFileSync(`${sys}/physical_block_size`, 'utf8')));
    } finally {
      layer.free(mem);
      await layer.close(fd);
    }
  });

  it('[root] BLKFILTER_ATTACH on a kernel without the blkfilter patch fails with an errno, not a crash', async () => {
    const layer = new KoffiIoctlLayer();
    const fd = await layer.open(loop, O_RDONLY);
    const mem = layer.alloc(32);
    try {
      mem.buffer.set(encodeBlkfilterName('blksnap'));
      const err = await layer.ioctl(fd, BLKFILTER_ATTACH, mem.buffer).then(
        () => null,
        (e: unknown) => e,
      );
      // Mainline kernels do not know request 140 of type 0x12.
      expect(isBlksnapError(err) && ['ENOTTY', 'EINVAL', 'ENOENT'].includes(err.errno)).toBe(true);
    } finally {
      layer.free(mem);
      await layer.close(fd);
    }
  });

  it.skipIf(existsSync('/sys/module/blksnap'))(
    '[root] the driver says the kernel lacks the filter when BLKFILTER_ATTACH is unknown',
    async () => {
      const driver = createKernelDriver();
      await expect(driver.attach(loop)).rejects.toThrow(new RegExp(`${loop}: .*no block-device filter support`));
      await driver.close();
    },
  );
});
