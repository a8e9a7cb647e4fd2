/** Snapshot names and times kept by the helper, persisted in its state directory. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EmbeddedEngineApi } from '../../../engine/core/embedded-api.js';
import { createEmbeddedDriver } from '../../../engine/helper/driver-select.js';
import { HelperService } from '../../../engine/helper/service.js';
import type { ClientContext } from '../../../engine/helper/service.js';
import { SettingsStore } from '../../../engine/helper/settings-store.js';
import { SNAPSHOT_META_FILE, SnapshotMetaStore } from '../../../engine/helper/snapshot-meta.js';
import { StorageLedger } from '../../../engine/helper/storage-ledger.js';
import { makeImage } from '../core/helpers.js';
import { embeddedBackends } from './kernel-backends.js';

describe('snapshot metadata through the helper', () => {
  let dir: string;
  let engine: EmbeddedEngineApi;
  let service: HelperService;
  let clock = 1_700_000_000_000;
  const ctx: ClientContext = { subscriptions: new Set() };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-meta-'));
    engine = await createEmbeddedDriver({});
    await engine.addDevice({ path: makeImage(dir, 'a.img', 1 << 20, 0), name: 'a' });
    const settings = new SettingsStore(dir);
    await settings.load();
    const meta = new SnapshotMetaStore(dir, () => clock);
    await meta.load();
    service = new HelperService(embeddedBackends(engine, { owner: { uid: 0, gid: 0 } }), settings, () => undefined, () => undefined, new StorageLedger(dir), meta);
  });

  afterEach(async () => {
    await service.stopPumps();
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists the name and the created and taken times, and a fresh store (a restarted helper) reads them back', async () => {
    const { id } = await service.handlers.snapshotCreate({ diffStoragePath: join(dir, 'diff'), limitSectors: 2048, devices: ['a'], name: 'before upgrade' }, ctx);
    clock += 5000;
    await service.handlers.snapshotTake({ id }, ctx);
    const [entry] = (await service.handlers['snapshots.list']({}, ctx)).snapshots;
    expect(entry).toMatchObject({ id, name: 'before upgrade', createdMs: 1_700_000_000_000, takenMs: 1_700_000_005_000 });
    const again = new SnapshotMetaStore(dir);
    await again.load();
    expect(again.get(id)).toEqual({ name: 'before upgrade', createdMs: 1_700_000_000_000, takenMs: 1_700_000_005_000 });
    // written atomically: no temporary file is left next to it
    expect(readdirSync(dir).filter((f) => f.startsWith(SNAPSHOT_META_FILE))).toEqual([SNAPSHOT_META_FILE]);
    await service.handlers.snapshotDestroy({ id }, ctx);
    expect(JSON.parse(readFileSync(join(dir, SNAPSHOT_META_FILE), 'utf8'))).toEqual({});
  });

  it('a snapshot without a name lists name null', async () => {
    const { id } = await service.handlers.snapshotCreate({ diffStoragePath: join(dir, 'diff'), limitSectors: 2048 }, ctx);
    expect((await service.handlers['snapshots.list']({}, ctx)).snapshots[0]).toMatchObject({ id, name: null, takenMs: null });
    await service.handlers.snapshotDestroy({ id }, ctx);
  });
});

describe('SnapshotMetaStore', () => {
  it('starts empty on a missing or damaged file and drops snapshots that no longer exist', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bm-meta-'));
    try {
      const store = new SnapshotMetaStore(dir, () => 42);
      await store.load();
      await store.created('a', 'one');
      await store.created('b', null);
      await store.keepOnly(['b']);
      const reread = new SnapshotMetaStore(dir);
      await reread.load();
      expect(reread.get('a')).toBeUndefined();
      expect(reread.get('b')).toEqual({ name: null, createdMs: 42, takenMs: null });
      const { writeFileSync } = await import('node:fs');
      writeFileSync(join(dir, SNAPSHOT_META_FILE), '{not json');
      const damaged = new SnapshotMetaStore(dir);
      await damaged.load();
      expect(damaged.get('b')).toBeUndefined();
      expect(existsSync(join(dir, SNAPSHOT_META_FILE))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
