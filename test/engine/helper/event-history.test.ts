/** The event history the helper keeps per snapshot: bounded, persisted, kept after the end, until dismissed. */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SnapshotEvent } from '../../../engine/abi/types.js';
import type { EmbeddedEngineApi } from '../../../engine/core/embedded-api.js';
import { createEmbeddedDriver } from '../../../engine/helper/driver-select.js';
import { EVENT_HISTORY_FILE, EventHistoryStore } from '../../../engine/helper/event-history.js';
import { HelperService } from '../../../engine/helper/service.js';
import type { ClientContext } from '../../../engine/helper/service.js';
import { SettingsStore } from '../../../engine/helper/settings-store.js';
import { SnapshotMetaStore } from '../../../engine/helper/snapshot-meta.js';
import { StorageLedger } from '../../../engine/helper/storage-ledger.js';
import { makeImage } from '../core/helpers.js';
import { embeddedBackends } from './kernel-backends.js';

const A = '0b7c1a52-8d7e-4c36-9a57-2f0f3bd0e0a1';
const B = '1c8d2b63-9e8f-4d47-8b68-3a1a4ce1f1b2';
const C = '2d9e3c74-af90-4e58-9c79-4b2b5df2a2c3';

const low = (snapshotId: string, timeMs: number): SnapshotEvent => ({ snapshotId, timeMs, code: 'low_free_space', requestedSectors: 2048 });
const corrupted = (snapshotId: string, timeMs: number): SnapshotEvent => ({
  snapshotId,
  timeMs,
  code: 'corrupted',
  device: 'disk1',
  devMajor: 240,
  devMinor: 0,
  errCode: -28,
});

describe('EventHistoryStore', () => {
  let dir: string;
  let clock: number;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bm-history-'));
    clock = 1_700_000_000_000;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps at most the bound per snapshot, dropping low-free-space events before a corruption, and counts what it dropped', async () => {
    const store = new EventHistoryStore(null, () => clock, { eventsPerSnapshot: 3 });
    await store.record(corrupted(A, 1), 'nightly');
    for (let t = 2; t <= 6; t++) await store.record(low(A, t), 'nightly');
    const [h] = store.list();
    expect(h?.dropped).toBe(3);
    expect(h?.events.map((e) => [e.code, e.timeMs])).toEqual([
      ['corrupted', 1],
      ['low_free_space', 5],
      ['low_free_space', 6],
    ]);
    expect(h?.name).toBe('nightly');
  });

  it('keeps at most the bound of snapshots: an ended history goes before a held snapshot\'s', async () => {
    const store = new EventHistoryStore(null, () => clock, { snapshots: 2 });
    await store.record(low(A, 1), null);
    clock += 10;
    await store.record(low(B, 2), null);
    await store.ended(B);
    clock += 10;
    await store.record(low(C, 3), null);
    // B is newer than A but ended: it is the one forgotten
    expect(store.list().map((h) => h.snapshotId)).toEqual([C, A]);
  });

  it('a destroyed snapshot\'s history stays, with its end time, until dismissed; dismissing twice says there is none', async () => {
    const store = new EventHistoryStore(null, () => clock);
    await store.record(corrupted(A, 5), null);
    clock = 1_700_000_009_000;
    await store.ended(A);
    expect(store.list(A)).toEqual([{ snapshotId: A, name: null, endedMs: 1_700_000_009_000, dropped: 0, events: [corrupted(A, 5)] }]);
    await store.dismiss(A);
    expect(store.list()).toEqual([]);
    await expect(store.dismiss(A)).rejects.toThrow(/^ESRCH: no event history for snapshot 0b7c1a52/);
    await expect(store.dismiss(A)).rejects.toMatchObject({ errno: 'ESRCH' });
  });

  it('survives a restart: a new store on the same directory reads the histories; a snapshot gone meanwhile is marked ended', async () => {
    const store = new EventHistoryStore(dir, () => clock);
    await store.record(corrupted(A, 10), 'db');
    await store.record(low(B, 20), null);
    await store.settled();
    // written atomically: only the file itself is left
    expect(readdirSync(dir)).toEqual([EVENT_HISTORY_FILE]);
    clock = 1_700_000_100_000;
    const again = new EventHistoryStore(dir, () => clock);
    await again.load();
    await again.endAllBut([B]);
    expect(again.list(A)).toEqual([{ snapshotId: A, name: 'db', endedMs: 1_700_000_100_000, dropped: 0, events: [corrupted(A, 10)] }]);
    expect(again.list(B)[0]?.endedMs).toBeNull();
  });

  it('many events in a row are written as a few whole files, the last with every event', async () => {
    const store = new EventHistoryStore(dir, () => clock);
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.record(low(A, i), null)));
    const again = new EventHistoryStore(dir);
    await again.load();
    expect(again.list(A)[0]?.events).toHaveLength(50);
  });
});

describe('event history through the helper', () => {
  let dir: string;
  let engine: EmbeddedEngineApi;
  let service: HelperService;
  const ctx: ClientContext = { subscriptions: new Set() };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-history-svc-'));
    engine = await createEmbeddedDriver({});
    await engine.addDevice({ path: makeImage(dir, 'a.img', 8 << 20, 0), name: 'a' });
    const settings = new SettingsStore(dir);
    await settings.load();
    await settings.update({ eventPollMs: 50 });
    const history = new EventHistoryStore(dir);
    service = new HelperService(
      embeddedBackends(engine, { owner: { uid: 0, gid: 0 } }),
      settings,
      () => undefined,
      () => undefined,
      new StorageLedger(dir),
      new SnapshotMetaStore(null),
      history,
    );
  });

  afterEach(async () => {
    await service.stopPumps();
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a corruption from a full storage is listed by events.history after the snapshot is destroyed, and by a restarted helper, until events.dismiss', async () => {
    const { id } = await service.handlers.snapshotCreate({ diffStoragePath: join(dir, 'diff'), limitSectors: 2048, devices: ['a'], name: 'small' }, ctx);
    await service.handlers.snapshotTake({ id }, ctx);
    // 8 MiB of first writes into a 1 MiB storage: the copy-on-write overflows
    await engine.device('a').write(0, Buffer.alloc(8 << 20, 0xab));
    const deadline = Date.now() + 10_000;
    const codes = async () => (await service.handlers['events.history']({ id }, ctx)).snapshots[0]?.events.map((e) => e.code) ?? [];
    while (!(await codes()).includes('corrupted') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await codes()).toContain('corrupted');
    await service.handlers.snapshotDestroy({ id }, ctx);

    const { snapshots } = await service.handlers['events.history']({}, ctx);
    expect(snapshots).toHaveLength(1);
    expect(snapshots[0]).toMatchObject({ snapshotId: id, name: 'small', endedMs: expect.any(Number) as number });
    expect(snapshots[0]?.events).toContainEqual(expect.objectContaining({ code: 'corrupted', device: 'a', errCode: -28 }));

    await service.history.settled();
    const restarted = new EventHistoryStore(dir);
    await restarted.load();
    expect(restarted.list(id)[0]?.events).toContainEqual(expect.objectContaining({ code: 'corrupted', errCode: -28 }));

    await service.handlers['events.dismiss']({ id }, ctx);
    expect((await service.handlers['events.history']({}, ctx)).snapshots).toEqual([]);
    await expect(service.handlers['events.dismiss']({ id }, ctx)).rejects.toMatchObject({ errno: 'ESRCH' });
  });

  it('hello names the event-history capability', async () => {
    expect((await service.handlers.hello({ protocolVersion: 1 }, ctx)).capabilities).toContain('event-history');
  });
});
