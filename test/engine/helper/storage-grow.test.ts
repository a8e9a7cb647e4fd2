/** storageGrow through the helper: the embedded engine grows a held snapshot's storage; the kernel driver refuses. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EmbeddedEngineApi } from '../../../engine/core/embedded-api.js';
import { createEmbeddedDriver } from '../../../engine/helper/driver-select.js';
import { dispatchLine } from '../../../engine/helper/dispatch.js';
import { HelperService } from '../../../engine/helper/service.js';
import type { ClientContext } from '../../../engine/helper/service.js';
import { SettingsStore } from '../../../engine/helper/settings-store.js';
import { StorageLedger } from '../../../engine/helper/storage-ledger.js';
import { SnapshotBook } from '../../../engine/helper/snapshot-book.js';
import { growStorage } from '../../../engine/helper/storage-grow.js';
import { embeddedBackends } from './kernel-backends.js';

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

describe('growStorage without the embedded engine', () => {
  it('says the kernel module cannot grow a held snapshot (EOPNOTSUPP) and leaves the record alone', async () => {
    const book = new SnapshotBook();
    const id = '0b7c1a52-8d7e-4c36-9a57-2f0f3bd0e0a1';
    book.add({ id, devices: [], taken: true, storagePath: '/x', limitSectors: 8 });
    await expect(growStorage(null, book, id, 8)).rejects.toThrow(/cannot grow a held snapshot's difference storage/);
    await expect(growStorage(null, book, id, 8)).rejects.toMatchObject({ errno: 'EOPNOTSUPP' });
    expect(book.get(id)?.limitSectors).toBe(8);
  });
});
