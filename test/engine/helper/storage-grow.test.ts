/** storageGrow through the helper: the embedded engine raises the limit; the kernel driver on VAL-7 appends a grow file; other modules refuse in words. */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { EmbeddedEngineApi } from '../../../engine/core/embedded-api.js';
import { createEmbeddedDriver } from '../../../engine/helper/driver-select.js';
import { dispatchLine } from '../../../engine/helper/dispatch.js';
import { HelperService } from '../../../engine/helper/service.js';
import type { ClientContext } from '../../../engine/helper/service.js';
import { SettingsStore } from '../../../engine/helper/settings-store.js';
import { StorageLedger } from '../../../engine/helper/storage-ledger.js';
import { reserveFileSpace } from '../../../engine/core/fallocate.js';
import { DIALECTS } from '../../../engine/kernel/dialects.js';
import { FIEMAP_EXTENT } from '../../../engine/kernel/fiemap.js';
import { FS_IOC_SETFLAGS } from '../../../engine/kernel/mapped-storage.js';
import { KernelDriver } from '../../../engine/kernel/kernel-driver.js';
import { FakeIoctlLayer } from '../kernel/fake-ioctl-layer.js';
import { embeddedBackends, kernelBackends } from './kernel-backends.js';

const STORE_DEV = '/dev/fake-store';

describe('storageGrow', () => {
  let dir: string;
  let engine: EmbeddedEngineApi;
  let service: HelperService;
  const ctx: ClientContext = { subscriptions: new Set() };
  const notes: [string, unknown][] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-grow-'));
    engine = await createEmbeddedDriver({});
    const settings = new SettingsStore(dir);
    await settings.load();
    service = new HelperService(
      embeddedBackends(engine),
      settings,
      (topic, params) => notes.push([topic, params]),
      () => undefined,
      new StorageLedger(dir),
    );
  });

  afterEach(async () => {
    await service.stopPumps();
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('raises the limit the driver and snapshots.list report, announces it, and advertises the capability', async () => {
    const hello = await service.handlers.hello({ protocolVersion: 1 }, ctx);
    expect(hello.capabilities).toContain('storage-grow');
    expect(hello.chunkMinimumBytes).toBe(256 * 1024); // chunk_minimum_shift 18 by default
    const { id } = await service.handlers.snapshotCreate({ diffStoragePath: join(dir, 'diff'), limitSectors: 2048 }, ctx);
    await service.handlers.storageGrow({ id, sectors: 1024 }, ctx);
    expect((await service.handlers.storageInfo({ id }, ctx)).limitSectors).toBe(3072);
    const list = await service.handlers['snapshots.list']({}, ctx);
    expect(list.snapshots.find((s) => s.id === id)?.limitSectors).toBe(3072);
    expect(notes).toContainEqual(['snapshot', { id, state: 'storage-grown' }]);
    await service.handlers.snapshotDestroy({ id }, ctx);
  });

  it('refuses a zero or fractional count at the protocol, naming the field', async () => {
    const { id } = await service.handlers.snapshotCreate({ diffStoragePath: join(dir, 'diff'), limitSectors: 2048 }, ctx);
    const state = { shuttingDown: false };
    for (const sectors of [0, 1.5, -8]) {
      const r = JSON.parse(JSON.stringify(await dispatchLine(JSON.stringify({ id: 1, method: 'storageGrow', params: { id, sectors } }), service, ctx, state))) as {
        error?: { code: string; message: string };
      };
      expect(r.error?.code).toBe('invalid_params');
      expect(r.error?.message).toMatch(/sectors/);
    }
    expect((await service.handlers.storageInfo({ id }, ctx)).limitSectors).toBe(2048);
    await service.handlers.snapshotDestroy({ id }, ctx);
  });
});

describe('hello chunk size', () => {
  it('follows the engine\'s chunk_minimum_shift', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bm-chunk-'));
    const engine = await createEmbeddedDriver({ chunkMinimumShift: 16 });
    const settings = new SettingsStore(dir);
    await settings.load();
    const backends = { driver: engine, engine, images: null, listBlockDevices: async () => [], nbd: null, driverVersion: '1.0.0.0', owner: { uid: 0, gid: 0 } };
    const service = new HelperService(backends, settings, () => undefined, () => undefined, new StorageLedger(dir));
    try {
      expect((await service.handlers.hello({ protocolVersion: 1 }, { subscriptions: new Set() })).chunkMinimumBytes).toBe(64 * 1024);
    } finally {
      await engine.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('storageGrow with the kernel driver', () => {
  let dir: string;
  let layer: FakeIoctlLayer;
  let driver: KernelDriver;
  let service: HelperService;
  let ledger: StorageLedger;
  const ctx: ClientContext = { subscriptions: new Set() };
  const notes: [string, unknown][] = [];

  async function start(dialect: 'val7' | 'v6' | 'lk6.15'): Promise<void> {
    layer = new FakeIoctlLayer({ dialect });
    layer.addDevice({ path: STORE_DEV, capacity: 256 * 1024 * 1024, major: 8, minor: 32 });
    driver = new KernelDriver({ layer, dialect: DIALECTS[dialect], resolveDevice: () => STORE_DEV, reserveSpace: reserveFileSpace });
    const settings = new SettingsStore(dir);
    await settings.load();
    ledger = new StorageLedger(dir);
    service = new HelperService(kernelBackends(driver), settings, (topic, params) => notes.push([topic, params]), () => undefined, ledger);
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bm-kgrow-'));
    notes.length = 0;
  });

  afterEach(async () => {
    await service.stopPumps();
    await driver.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('VAL-7: advertises the capability; a grow file next to the storage is appended, recorded, and removed at destroy', async () => {
    await start('val7');
    expect((await service.handlers.hello({ protocolVersion: 1 }, ctx)).capabilities).toContain('storage-grow');
    const storage = join(dir, 'diff');
    const { id } = await service.handlers.snapshotCreate({ diffStoragePath: storage, limitSectors: 2048 }, ctx);
    await service.handlers.storageGrow({ id, sectors: 4096 }, ctx);
    const grown = `${storage}.grow-1`;
    expect(statSync(grown).size).toBe(4096 * 512);
    // the module got the grow file's sectors on its file system's device
    expect(layer.storageOf(id).appended.filter((a) => a.ranges.length > 0).map((a) => a.devpath)).toEqual([STORE_DEV, STORE_DEV]);
    expect((await service.handlers.storageInfo({ id }, ctx)).limitSectors).toBe(6144);
    expect((await service.handlers['snapshots.list']({}, ctx)).snapshots.find((s) => s.id === id)?.limitSectors).toBe(6144);
    expect(notes).toContainEqual(['snapshot', { id, state: 'storage-grown' }]);
    expect(ledger.paths).toEqual(expect.arrayContaining([storage, grown]));
    await service.handlers.storageGrow({ id, sectors: 8 }, ctx);
    expect(existsSync(`${storage}.grow-2`)).toBe(true);
    await service.handlers.snapshotDestroy({ id }, ctx);
    expect([existsSync(storage), existsSync(grown), existsSync(`${storage}.grow-2`)]).toEqual([false, false, false]);
    expect(ledger.paths).toEqual([]);
  });

  it('VAL-7: a restarted helper takes the mapped storage back: it grows again, and destroy clears the flags and removes every file', async () => {
    await start('val7');
    const storage = join(dir, 'diff');
    const { id } = await service.handlers.snapshotCreate({ diffStoragePath: storage, limitSectors: 2048 }, ctx);
    await service.handlers.storageGrow({ id, sectors: 2048 }, ctx);
    // the helper stops; the module keeps the snapshot (same fake module, a new driver and helper)
    await service.stopPumps();
    await driver.close();
    const logs: string[] = [];
    driver = new KernelDriver({ layer, dialect: DIALECTS.val7, resolveDevice: () => STORE_DEV, reserveSpace: reserveFileSpace });
    const settings = new SettingsStore(dir);
    await settings.load();
    ledger = new StorageLedger(dir);
    service = new HelperService(kernelBackends(driver), settings, () => undefined, (m) => logs.push(m), ledger);
    await service.adoptExisting();
    expect(logs).toContain(`snapshot ${id}: took back its mapped difference storage (2 files)`);
    expect((await service.handlers.storageInfo({ id }, ctx)).limitSectors).toBe(4096);
    await service.handlers.storageGrow({ id, sectors: 1024 }, ctx);
    expect(statSync(`${storage}.grow-2`).size).toBe(1024 * 512);
    const clearedBefore = layer.calls.filter((c) => c.request === FS_IOC_SETFLAGS).length;
    await service.handlers.snapshotDestroy({ id }, ctx);
    // the immutable flag of each of the three files cleared, then each removed
    expect(layer.calls.filter((c) => c.request === FS_IOC_SETFLAGS).length - clearedBefore).toBe(3);
    expect([storage, `${storage}.grow-1`, `${storage}.grow-2`].map((p) => existsSync(p))).toEqual([false, false, false]);
    expect(ledger.paths).toEqual([]);
  });

  it('VAL-7: a grown snapshot destroyed by another program: its files are released by the driver, then removed', async () => {
    await start('val7');
    const storage = join(dir, 'diff');
    const { id } = await service.handlers.snapshotCreate({ diffStoragePath: storage, limitSectors: 2048 }, ctx);
    await service.handlers.storageGrow({ id, sectors: 2048 }, ctx);
    // e.g. the blksnap tool: the module forgets the snapshot, this helper's driver does not know
    const setFlags = () => layer.calls.filter((c) => c.request === FS_IOC_SETFLAGS).length;
    const pinned = setFlags();
    const other = new KernelDriver({ layer, dialect: DIALECTS.val7 });
    await other.snapshotDestroy(id);
    await other.close();
    await vi.waitFor(() => expect(notes).toContainEqual(['snapshot', { id, state: 'destroyed' }]), { timeout: 5000 });
    await vi.waitFor(() => expect([existsSync(storage), existsSync(`${storage}.grow-1`)]).toEqual([false, false]), { timeout: 5000 });
    expect(ledger.paths).toEqual([]);
    // both files unpinned and closed by this helper's driver: only its control device is open
    expect(setFlags() - pinned).toBe(2);
    expect(layer.openCount).toBe(1);
  });

  it('VAL-7: a grow the driver refuses leaves no file, no record and the limit as it was, and says why', async () => {
    await start('val7');
    const storage = join(dir, 'diff');
    const { id } = await service.handlers.snapshotCreate({ diffStoragePath: storage, limitSectors: 2048 }, ctx);
    layer.fiemapAnswer = () => [{ logical: 0, physical: 0, length: 4096 * 512, flags: FIEMAP_EXTENT.shared | FIEMAP_EXTENT.last }];
    await expect(service.handlers.storageGrow({ id, sectors: 4096 }, ctx)).rejects.toThrow(/shared with another file/);
    expect(existsSync(`${storage}.grow-1`)).toBe(false);
    expect(ledger.paths).toEqual([storage]);
    expect((await service.handlers.storageInfo({ id }, ctx)).limitSectors).toBe(2048);
    await service.handlers.snapshotDestroy({ id }, ctx);
  });

  it('VAL-7: a directory or block-device storage cannot grow, in words, before any file is made', async () => {
    await start('val7');
    const { id } = await service.handlers.snapshotCreate({ diffStoragePath: dir, diffStorageForm: 'directory', limitSectors: 2048 }, ctx);
    await expect(service.handlers.storageGrow({ id, sectors: 8 }, ctx)).rejects.toThrow(/EOPNOTSUPP: .*an unnamed file, which the module fills itself.*only a new file can grow/);
    await service.handlers.snapshotDestroy({ id }, ctx);
  });

  it.each(['v6', 'lk6.15'] as const)('%s: no capability, and storageGrow is EOPNOTSUPP in words', async (dialect) => {
    await start(dialect);
    expect((await service.handlers.hello({ protocolVersion: 1 }, ctx)).capabilities).not.toContain('storage-grow');
    const { id } = await service.handlers.snapshotCreate({ diffStoragePath: join(dir, 'diff'), limitSectors: 2048 }, ctx);
    await expect(service.handlers.storageGrow({ id, sectors: 8 }, ctx)).rejects.toThrow(/EOPNOTSUPP: .*only VAL-7's veeamblksnap has append_storage/);
    expect((await service.handlers.storageInfo({ id }, ctx)).limitSectors).toBe(2048);
    await service.handlers.snapshotDestroy({ id }, ctx);
  });
});
