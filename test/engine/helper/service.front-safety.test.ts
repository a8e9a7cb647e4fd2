/**
 * The helper with the embedded engine, a real image registry and real block-device
 * discovery: the write workload only on lab disks, devices.list saying why a block
 * device cannot be fronted, images.add refusing it with the same words.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EmbeddedEngineApi } from '../../../engine/core/embedded-api.js';
import { listBlockDevices, openImageRegistry } from '../../../engine/helper/devices-wiring.js';
import { createEmbeddedDriver } from '../../../engine/helper/driver-select.js';
import { HelperService } from '../../../engine/helper/service.js';
import type { ClientContext } from '../../../engine/helper/service.js';
import { SettingsStore } from '../../../engine/helper/settings-store.js';
import { canUseLoop, hasCommand } from '../../helpers/env.js';
import { kernelBackends } from './kernel-backends.js';

const MiB = 1 << 20;
const ctx: ClientContext = { subscriptions: new Set() };
let dir: string;
let engine: EmbeddedEngineApi;
let service: HelperService;
const undo: (() => void)[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bm-front-'));
  engine = await createEmbeddedDriver({});
  const settings = new SettingsStore(dir);
  await settings.load();
  service = new HelperService(
    {
      driver: engine,
      engine,
      images: await openImageRegistry(join(dir, 'state')),
      listBlockDevices,
      nbd: null,
      driverVersion: '1.0.0.0',
      owner: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
    },
    settings,
    () => undefined,
  );
});

afterEach(async () => {
  await service.workloads.stopAll();
  await service.stopPumps();
  await engine.close();
  for (const step of undo.splice(0).reverse()) {
    try {
      step();
    } catch {
      // best effort
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('the write workload only overwrites lab disks', () => {
  it('runs on a lab disk the helper created, and is refused with EPERM on an image added from an existing file, which stays untouched', async () => {
    await service.handlers['images.create']({ path: join(dir, 'lab.img'), size: 4 * MiB, name: 'lab' }, ctx);
    const existing = join(dir, 'precious.img');
    writeFileSync(existing, Buffer.alloc(4 * MiB, 0x42));
    await service.handlers['images.add']({ path: existing, name: 'precious' }, ctx);

    const { devices } = await service.handlers['devices.list']({}, ctx);
    expect(devices.filter((d) => d.kind === 'image').map((d) => [d.name, d.labDisk])).toEqual([
      ['lab', true],
      ['precious', false],
    ]);

    await expect(service.handlers['workload.start']({ device: 'precious', rateMiBps: 64, pattern: 'sequential' }, ctx)).rejects.toThrow(
      /^EPERM: the write workload overwrites data, so it runs only on lab disks the helper created/,
    );
    expect(service.workloads.list()).toEqual([]);
    await service.handlers['workload.start']({ device: 'lab', rateMiBps: 64, pattern: 'sequential' }, ctx);
    expect(service.workloads.list().map((w) => w.device)).toEqual(['lab']);
    await service.workloads.stopAll();
    expect(readFileSync(existing).every((x) => x === 0x42)).toBe(true);
  });
});

describe('devices.list says which block devices the engine cannot front, and why', () => {
  it('gives the reasons only with the embedded engine (the kernel module snapshots devices in use)', async () => {
    const record = { path: '/dev/vdz', name: 'vdz', capacity: MiB, blockedBy: ['mounted at /'] };
    const kernel = new HelperService(
      kernelBackends(engine, { listBlockDevices: async () => [record] }),
      new SettingsStore(dir),
      () => undefined,
    );
    expect((await kernel.handlers['devices.list']({}, ctx)).devices[0]).not.toHaveProperty('blockedBy');
  });

  it.skipIf(!canUseLoop || !hasCommand('mkfs.ext4'))(
    '[root] a mounted loop device is listed with "mounted at <dir>", a free one with no reason, and images.add of the mounted one is refused with the same words',
    async () => {
      const loops: string[] = [];
      for (const name of ['mounted', 'free']) {
        const file = join(dir, `${name}.img`);
        writeFileSync(file, '');
        truncateSync(file, 16 * MiB);
        const loop = execFileSync('losetup', ['--find', '--show', file], { encoding: 'utf8' }).trim();
        undo.push(() => execFileSync('losetup', ['-d', loop]));
        loops.push(loop);
      }
      const [mounted, free] = loops as [string, string];
      execFileSync('mkfs.ext4', ['-q', mounted]);
      const mnt = join(dir, 'mnt');
      mkdirSync(mnt);
      execFileSync('mount', [mounted, mnt]);
      undo.push(() => execFileSync('umount', [mnt]));

      const { devices } = await service.handlers['devices.list']({}, ctx);
      expect(devices.find((d) => d.path === mounted)?.blockedBy).toEqual([`mounted at ${mnt}`]);
      expect(devices.find((d) => d.path === free)?.blockedBy).toEqual([]);

      await expect(service.handlers['images.add']({ path: mounted }, ctx)).rejects.toThrow(`cannot front ${mounted}: mounted at ${mnt}`);
      expect((await service.handlers['images.list']({}, ctx)).images).toEqual([]);
      // the free one is fronted
      const added = await service.handlers['images.add']({ path: free, name: 'free' }, ctx);
      expect(added.path).toBe(free);
      await service.handlers['images.remove']({ image: 'free' }, ctx);
    },
  );
});
