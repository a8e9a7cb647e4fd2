/** HelperService + dispatchLine with a fake kernel-kind driver (no module needed). */
import { closeSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlksnapDriver } from '../../../engine/abi/driver.js';
import { createEmbeddedDriver } from '../../../engine/helper/driver-select.js';
import { dispatchLine } from '../../../engine/helper/dispatch.js';
import { HelperService } from '../../../engine/helper/service.js';
import type { ClientContext } from '../../../engine/helper/service.js';
import { SettingsStore } from '../../../engine/helper/settings-store.js';
import { StorageLedger } from '../../../engine/helper/storage-ledger.js';
import type { Topic } from '../../../engine/protocol/schemas.js';
import { embeddedBackends, kernelBackends } from './kernel-backends.js';

const ID = '0b7c1a52-8d7e-4c36-9a57-2f0f3bd0e0a1';

function fakeKernelDriver(calls: string[]): BlksnapDriver {
  const record = (name: string) => async (...args: unknown[]) => {
    calls.push(`${name} ${args.map((a) => JSON.stringify(a)).join(' ')}`);
    return undefined;
  };
  return {
    kind: 'kernel',
    version: async () => ({ major: 6, minor: 0, revision: 0, build: 0 }),
    snapshotCreate: async () => ID,
    snapshotDestroy: record('snapshotDestroy'),
    snapshotTake: record('snapshotTake'),
    snapshotCollect: async () => [ID],
    snapshotWaitEvent: async (_id: string, ms: number) => {
      await new Promise((r) => setTimeout(r, Math.min(ms, 20)));
      return null;
    },
    attach: record('attach'),
    detach: record('detach'),
    // a driver bug: a result that does not match the schema
    cbtInfo: async () => ({ deviceCapacity: -1 }) as never,
    cbtMap: async () => new Uint8Array(0),
    cbtDirty: record('cbtDirty'),
    snapshotAdd: record('snapshotAdd'),
    snapshotInfo: async () => ({ errorCode: 0, image: '' }),
    storageInfo: async () => ({ snapshotId: ID, path: '/x', limitSectors: 1, allocatedSectors: 0, usedSectors: null }),
    close: async () => undefined,
  } as BlksnapDriver;
}

describe('HelperService with the kernel driver', () => {
  let dir: string;
  let service: HelperService;
  let calls: string[];
  const notes: [string, unknown][] = [];
  const ctx: ClientContext = { subscriptions: new Set<Topic>() };
  const state = { shuttingDown: false };
  const send = async (message: unknown) => JSON.parse(JSON.stringify(await dispatchLine(JSON.stringify(message), service, ctx, state))) as Record<string, unknown>;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-service-'));
    calls = [];
    const settings = new SettingsStore(dir);
    await settings.load();
    service = new HelperService(
      kernelBackends(fakeKernelDriver(calls), { listBlockDevices: async () => [{ path: '/dev/vda', name: 'vda', capacity: 1 << 30 }] }),
      settings,
      (topic, params) => notes.push([topic, params]),
    );
  });

  afterEach(async () => {
    await service.stopPumps();
    rmSync(dir, { recursive: true, force: true });
  });

  it('says hello with the kernel driver and no image capabilities', async () => {
    const r = await send({ id: 1, method: 'hello', params: { protocolVersion: 1 } });
    expect(r).toMatchObject({ id: 1, result: { driver: 'kernel', driverVersion: '6.0.0.0' } });
    expect((r.result as { capabilities: string[] }).capabilities).not.toContain('images');
    expect((r.result as { capabilities: string[] }).capabilities).not.toContain('cbt-active-table');
  });

  it.skipIf(!existsSync('/dev/loop0'))('[loop] answers cbtMap of the active table with EOPNOTSUPP; the snapshot table goes to the driver', async () => {
    const active = await send({ id: 1, method: 'cbtMap', params: { device: '/dev/loop0', offset: 0, length: 1, table: 'active' } });
    expect(active).toMatchObject({ id: 1, error: { errno: 'EOPNOTSUPP', message: expect.stringContaining('embedded engine') } });
    const snap = await send({ id: 2, method: 'cbtMap', params: { device: '/dev/loop0', offset: 0, length: 1, table: 'snapshot' } });
    expect(snap).toMatchObject({ id: 2, result: { offset: 0, length: 0, encoding: 'rle1-base64' } });
  });

  it('accepts only block devices', async () => {
    expect(await send({ id: 1, method: 'attach', params: { device: '/etc/passwd' } })).toMatchObject({ error: { errno: 'ENODEV' } });
    expect(await send({ id: 2, method: 'attach', params: { device: '/dev/null' } })).toMatchObject({ error: { errno: 'ENODEV' } });
    expect(await send({ id: 3, method: 'attach', params: { device: '/dev/nonexistent-disk' } })).toMatchObject({ error: { errno: 'ENOENT' } });
    expect(calls).toEqual([]);
  });

  it.skipIf(!existsSync('/dev/loop0'))('[loop] passes a block device to the driver by its canonical path', async () => {
    expect(await send({ id: 1, method: 'attach', params: { device: 'loop0' } })).toMatchObject({ result: { ok: true } });
    expect(calls).toEqual(['attach "/dev/loop0"']);
  });

  it('answers image methods with EOPNOTSUPP and lists block devices', async () => {
    expect(await send({ id: 1, method: 'images.list' })).toMatchObject({ error: { errno: 'EOPNOTSUPP' } });
    expect(await send({ id: 2, method: 'exports.list' })).toMatchObject({ result: { socketPath: null, exports: [] } });
    expect(await send({ id: 3, method: 'devices.list' })).toMatchObject({ result: { devices: [{ ref: '/dev/vda', kind: 'block', nbdUri: null }] } });
  });

  it.skipIf(!existsSync('/dev/loop0'))('[loop] turns a driver result that breaks the schema into an internal error', async () => {
    const r = await send({ id: 1, method: 'cbtInfo', params: { device: '/dev/loop0' } });
    expect(r).toMatchObject({ id: 1, error: { code: 'internal', errno: 'EIO', message: expect.stringContaining('bad cbtInfo result') } });
  });

  it('creates, takes and destroys with notifications, and refuses requests while shutting down', async () => {
    const diff = join(dir, 'diff');
    expect(await send({ id: 1, method: 'snapshotCreate', params: { diffStoragePath: diff, limitSectors: 2048 } })).toMatchObject({ result: { id: ID } });
    expect(await send({ id: 2, method: 'snapshotTake', params: { id: ID } })).toMatchObject({ result: { ok: true } });
    // the kernel module's image devices accept writes whatever was asked: the listing says so
    expect(await send({ id: 3, method: 'snapshots.list' })).toMatchObject({ result: { snapshots: [{ id: ID, taken: true, storagePath: diff, writableImages: true }] } });
    expect(await send({ id: 4, method: 'snapshotDestroy', params: { id: ID } })).toMatchObject({ result: { ok: true } });
    expect(notes.filter(([t]) => t === 'snapshot').map(([, p]) => (p as { state: string }).state)).toEqual(['created', 'taken', 'destroyed']);
    state.shuttingDown = true;
    try {
      expect(await send({ id: 5, method: 'version' })).toMatchObject({ error: { code: 'shutting_down', errno: 'ECANCELED' } });
    } finally {
      state.shuttingDown = false;
    }
  });
});

describe('HelperService with the kernel driver across helper restarts', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bm-service-restart-'));
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function helper(live: string[], logs: string[] = []): Promise<HelperService> {
    const driver = { ...fakeKernelDriver([]) } as BlksnapDriver;
    driver.snapshotCreate = async ({ diffStoragePath }) => {
      writeFileSync(diffStoragePath, ''); // the module's O_CREAT|O_EXCL
      live.push(ID);
      return ID;
    };
    driver.snapshotCollect = async () => [...live];
    driver.snapshotDestroy = async (id) => {
      live.splice(live.indexOf(id), 1);
    };
    const settings = new SettingsStore(dir);
    await settings.load();
    const service = new HelperService(
      kernelBackends(driver),
      settings,
      () => undefined,
      (m) => logs.push(m),
      new StorageLedger(dir),
    );
    await service.adoptExisting();
    return service;
  }

  it('a new helper learns the storage file of a kernel snapshot and removes it on destroy', async () => {
    const live: string[] = [];
    const diff = join(dir, 'diff');
    const first = await helper(live);
    await first.handlers.snapshotCreate({ diffStoragePath: diff, limitSectors: 2048 }, { subscriptions: new Set() });
    await first.stopPumps(); // the helper stops; the kernel snapshot lives on
    const second = await helper(live);
    try {
      expect((await second.handlers['snapshots.list']({}, { subscriptions: new Set() })).snapshots).toEqual([
        expect.objectContaining({ id: ID, storagePath: diff, writableImages: true }),
      ]);
      expect(existsSync(diff)).toBe(true);
      await second.handlers.snapshotDestroy({ id: ID }, { subscriptions: new Set() });
      expect(existsSync(diff)).toBe(false);
    } finally {
      await second.stopPumps();
    }
  });

  it('never removes another file when the storage directory is swapped for a symlink right after creation', async () => {
    const userDir = join(dir, 'user');
    const victimDir = join(dir, 'victim');
    mkdirSync(userDir);
    mkdirSync(victimDir);
    writeFileSync(join(victimDir, 'diff'), 'precious');
    const live: string[] = [];
    const service = await helper(live);
    const driver = (service as unknown as { backends: { driver: BlksnapDriver } }).backends.driver;
    driver.snapshotCreate = async ({ diffStorageFd }) => {
      if (diffStorageFd !== undefined) closeSync(diffStorageFd); // the module holds the file the helper created
      // the user (who owns the directory) races the helper: directory out, symlink in
      renameSync(userDir, join(dir, 'user-moved'));
      symlinkSync(victimDir, userDir);
      live.push(ID);
      return ID;
    };
    try {
      await service.handlers.snapshotCreate({ diffStoragePath: join(userDir, 'diff'), limitSectors: 2048 }, { subscriptions: new Set() });
      await service.handlers.snapshotDestroy({ id: ID }, { subscriptions: new Set() });
      expect(readFileSync(join(victimDir, 'diff'), 'utf8')).toBe('precious');
      // nor a later helper cleaning up after a crash
      await new StorageLedger(dir).removeLeftovers(() => undefined);
      expect(readFileSync(join(victimDir, 'diff'), 'utf8')).toBe('precious');
    } finally {
      await service.stopPumps();
    }
  });

  it('a new helper removes the file of a kernel snapshot destroyed while no helper ran', async () => {
    const live: string[] = [];
    const diff = join(dir, 'diff');
    const first = await helper(live);
    await first.handlers.snapshotCreate({ diffStoragePath: diff, limitSectors: 2048 }, { subscriptions: new Set() });
    await first.stopPumps();
    live.length = 0; // destroyed with the blksnap tool meanwhile
    const logs: string[] = [];
    const second = await helper(live, logs);
    await second.stopPumps();
    expect(existsSync(diff)).toBe(false);
    expect(logs.join('\n')).toContain(`removed ${diff}, the difference storage of snapshot ${ID}, destroyed while no helper ran`);
  });
});

describe('HelperService shutdown and destroy', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bm-service-life-'));
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('announces a snapshot it destroys exactly once (embedded engine), with its storage file gone', async () => {
    const engine = await createEmbeddedDriver({});
    const settings = new SettingsStore(dir);
    await settings.load();
    const notes: [string, unknown][] = [];
    const service = new HelperService(
      embeddedBackends(engine),
      settings,
      (topic, params) => notes.push([topic, params]),
      () => undefined,
      new StorageLedger(dir),
    );
    const ctx: ClientContext = { subscriptions: new Set() };
    try {
      const diff = join(dir, 'diff');
      const { id } = await service.handlers.snapshotCreate({ diffStoragePath: diff, limitSectors: 2048 }, ctx);
      await new Promise((r) => setTimeout(r, 30)); // the pump waits on the engine's event queue
      await service.handlers.snapshotDestroy({ id }, ctx);
      await new Promise((r) => setTimeout(r, 30));
      expect(notes.filter(([t]) => t === 'snapshot').map(([, p]) => p)).toEqual([
        { id, state: 'created' },
        { id, state: 'destroyed' },
      ]);
      expect(existsSync(diff)).toBe(false);
      // the same path can be used again right away
      const again = await service.handlers.snapshotCreate({ diffStoragePath: diff, limitSectors: 2048 }, ctx);
      await service.handlers.snapshotDestroy({ id: again.id }, ctx);
    } finally {
      await service.stopPumps();
      await engine.close();
    }
  });

  it('starts no event pump after stopPumps for a request that was still running (helper shutdown)', async () => {
    let waits = 0;
    let created: (() => void) | null = null;
    const driver = { ...fakeKernelDriver([]) } as BlksnapDriver;
    const live: string[] = [];
    driver.snapshotCollect = async () => [...live];
    driver.snapshotCreate = async () => {
      await new Promise<void>((resolve) => (created = resolve));
      live.push(ID);
      return ID;
    };
    driver.snapshotWaitEvent = async (_id, ms) => {
      waits++;
      await new Promise((r) => setTimeout(r, Math.min(ms, 10)));
      return null;
    };
    const settings = new SettingsStore(dir);
    await settings.load();
    const service = new HelperService(
      kernelBackends(driver),
      settings,
      () => undefined,
    );
    const ctx: ClientContext = { subscriptions: new Set() };
    const inFlight = service.handlers.snapshotCreate({ diffStoragePath: join(dir, 'diff'), limitSectors: 2048 }, ctx);
    await new Promise((r) => setTimeout(r, 20));
    await service.stopPumps(); // the daemon's close(): pumps first, then it waits for answers in flight
    (created as unknown as () => void)();
    await inFlight;
    await new Promise((r) => setTimeout(r, 60));
    expect(waits).toBe(0);
    // a waiter after shutdown is answered at once instead of starting a pump
    expect(await service.handlers.snapshotWaitEvent({ id: ID, timeoutMs: 10_000 }, ctx)).toEqual({ event: null });
    await service.stopPumps();
    expect(waits).toBe(0);
  });
});
