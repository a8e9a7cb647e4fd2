/**
 * hello and version carry the kernel module found at start: dialect, module
 * version, filter mechanism and the health line (validated by the protocol schemas
 * in dispatch).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dispatchLine } from '../../../engine/helper/dispatch.js';
import { HelperService } from '../../../engine/helper/service.js';
import type { ClientContext } from '../../../engine/helper/service.js';
import { SettingsStore } from '../../../engine/helper/settings-store.js';
import { DIALECTS } from '../../../engine/kernel/dialects.js';
import type { ModuleHealth } from '../../../engine/kernel/detect.js';
import { KernelDriver } from '../../../engine/kernel/kernel-driver.js';
import type { Topic } from '../../../engine/protocol/schemas.js';
import { FakeIoctlLayer } from '../kernel/fake-ioctl-layer.js';
import { kernelBackends } from './kernel-backends.js';

const VAL7: ModuleHealth = {
  loaded: true,
  dialect: 'val7',
  moduleVersion: '7.0.0.0',
  filter: 'bdevfilter',
  bdevfilter: true,
  controlPath: '/dev/veeamblksnap',
  summary: 'veeamblksnap 7.0.0.0 (VAL-7 dialect) is loaded; bdevfilter is loaded',
  advice: null,
};

const SDB = '/dev/sdb';

describe('HelperService: the kernel module in hello and version', () => {
  let dir: string;
  let driver: KernelDriver;
  let layer: FakeIoctlLayer;
  let service: HelperService;
  const ctx: ClientContext = { subscriptions: new Set<Topic>() };
  const state = { shuttingDown: false };
  const send = async (message: unknown) =>
    JSON.parse(JSON.stringify(await dispatchLine(JSON.stringify(message), service, ctx, state))) as Record<string, unknown>;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-kmod-'));
    const settings = new SettingsStore(dir);
    await settings.load();
    layer = new FakeIoctlLayer({ dialect: 'val7', version: { major: 7, minor: 0, revision: 0, build: 0 } });
    layer.addDevice({ path: SDB, capacity: 64 * 1024 * 1024, major: 8, minor: 16 });
    driver = new KernelDriver({ layer, dialect: DIALECTS.val7 });
    const listBlockDevices = async () => [{ path: SDB, name: 'sdb', capacity: 64 * 1024 * 1024 }];
    service = new HelperService(
      kernelBackends(driver, { driverVersion: '7.0.0.0', kernelModule: VAL7, listBlockDevices }),
      settings,
      () => undefined,
    );
  });

  afterEach(async () => {
    await service.stopPumps();
    await driver.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('hello reports the module health (dialect, version, filter mechanism)', async () => {
    const r = await send({ id: 1, method: 'hello', params: { protocolVersion: 1 } });
    expect(r).toMatchObject({ id: 1, result: { driver: 'kernel', driverVersion: '7.0.0.0', kernelModule: VAL7 } });
  });

  it('devices.list asks the module whether each block device is tracked (a tracker attached before the helper started counts)', async () => {
    const attachedOf = async () => {
      const r = await send({ id: 1, method: 'devices.list', params: {} });
      const devices = (r.result as { devices: { ref: string; attached: boolean | null }[] }).devices;
      return Object.fromEntries(devices.map((d) => [d.ref, d.attached]));
    };
    // the module answers cbtinfo of an untracked device with ENOENT
    expect(await attachedOf()).toEqual({ [SDB]: false });
    // attached by another driver instance (as another process, or a helper run before this one)
    const other = new KernelDriver({ layer, dialect: DIALECTS.val7 });
    await other.attach(SDB);
    await other.close();
    expect(await attachedOf()).toEqual({ [SDB]: true });
  });

  it('version adds the dialect and the filter mechanism to the module version read through the VAL-7 control device', async () => {
    const r = await send({ id: 1, method: 'version', params: {} });
    expect(r).toEqual({ id: 1, result: { major: 7, minor: 0, revision: 0, build: 0, dialect: 'val7', filter: 'bdevfilter' } });
  });
});
