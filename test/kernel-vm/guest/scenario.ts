/**
 * The VM test's guest scenario, run by /init in ONE node process on the built product
 * (dist/, at /app/engine): the kernel driver's full command set on the real VAL-7.0
 * module, then backups from its image device through engine/backup. Every expected
 * value comes from the module's documented behaviour or from what this scenario wrote
 * (CbtModel), never from the driver. Devices: /dev/vda the original (32 MiB, random
 * data written by the host), /dev/vdb an ext4 work disk at /work, /dev/vdc a spare
 * disk for append_storage, /dev/vdd a spare disk for the block-device storage form.
 */
import { deepStrictEqual, equal, ok, rejects } from 'node:assert/strict';
import { closeSync, existsSync, openSync, constants as fsc } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { mkdir, stat } from 'node:fs/promises';
import type { SnapshotCreateParams, SnapshotId } from '../../../engine/abi/types.js';
import { createKernelDriver, detectKernelModule } from '../../../engine/kernel/index.js';
import type { KernelDriver } from '../../../engine/kernel/index.js';
import { CbtModel, mapDifferences } from './cbt-model.js';
import { MiB, deviceBytes, deviceNumber, readRange, sha256Of, writeRandom } from './block-io.js';
import { Steps } from './steps.js';
import { backupScenario } from './backup-scenario.js';
import { freezeAtTake } from './freeze-at-take.js';
import { helperStorage, helperStorageForms, preparedFile } from './helper-storage-forms.js';
import type { StorageFormCase } from './helper-storage-forms.js';
import { helperCliScenario } from './helper-cli-scenario.js';

const ORIGINAL = '/dev/vda';
const WORK = '/work';
/** The ext4 work disk mounted at /work. */
const WORK_DEVICE = '/dev/vdb';
const SPARE = '/dev/vdc';
/** A second spare disk: the block-device storage form. */
const SPARE_STORAGE = '/dev/vdd';
const errno = (name: string) => (err: unknown) => (err as { errno?: unknown }).errno === name;

/**
 * The difference-storage forms snapshot_create is run with, each through a whole
 * take / write / compare / destroy cycle, plus the form's own checks while the
 * module holds the storage and after destroy. The helper's forms (existing file,
 * directory, block device) are in helper-storage-forms.ts.
 */
const STORAGE_FORMS: StorageFormCase[] = [
  {
    name: 'new file',
    open: async (limitSectors) => ({ diffStoragePath: `${WORK}/diff-new`, limitSectors }),
    afterDestroy: async (params) => {
      ok(!existsSync(params.diffStoragePath), 'the driver removed the file it created');
    },
  },
  {
    name: 'file the caller created (descriptor)',
    open: async (limitSectors) => {
      const path = `${WORK}/diff-caller`;
      const fd = openSync(path, fsc.O_CREAT | fsc.O_EXCL | fsc.O_RDWR, 0o600);
      return { diffStoragePath: path, limitSectors, diffStorageFd: fd };
    },
    afterDestroy: async (params) => {
      ok(existsSync(params.diffStoragePath), 'the file the caller created is left in place');
    },
  },
  ...helperStorageForms(WORK, SPARE_STORAGE),
];

export interface ScenarioContext {
  steps: Steps;
  driver: KernelDriver;
  model: CbtModel;
  deviceSize: number;
  imageName: string;
}

/** cbtinfo and the whole map (also read in portions) against the model. */
export async function checkCbt(ctx: ScenarioContext, label: string): Promise<unknown> {
  const { driver, model } = ctx;
  const info = await driver.cbtInfo(ORIGINAL);
  equal(info.changesNumber, model.changesNumber, `${label}: changes_number`);
  equal(info.blockSize, model.blockSize, `${label}: block size`);
  equal(info.blockCount, model.blockCount, `${label}: block count`);
  const whole = await driver.cbtMap(ORIGINAL, 0, model.blockCount);
  deepStrictEqual(mapDifferences(whole, model.read), [], `${label}: whole map`);
  // portions of uneven sizes, the last asking past the end
  const n = model.blockCount;
  const cuts = [0, 1, Math.floor(n / 4) + 5, Math.floor(n / 2) + 44, n - 5];
  const parts: Uint8Array[] = [];
  for (let i = 0; i < cuts.length; i++) {
    const from = cuts[i] ?? 0;
    const to = cuts[i + 1] ?? model.blockCount + 100;
    parts.push(await driver.cbtMap(ORIGINAL, from, to - from));
  }
  const joined = Uint8Array.from(parts.flatMap((p) => [...p]));
  deepStrictEqual(mapDifferences(joined, model.read), [], `${label}: map read in portions`);
  const marked: Record<string, number> = {};
  model.read.forEach((v) => v && (marked[v] = (marked[v] ?? 0) + 1));
  return { changesNumber: info.changesNumber, generationId: info.generationId, markedBlocksByNumber: marked };
}

/** create + add + take with one storage form; returns the id. */
async function createAndTake(ctx: ScenarioContext, params: SnapshotCreateParams): Promise<SnapshotId> {
  const id = await ctx.driver.snapshotCreate(params);
  await ctx.driver.snapshotAdd(id, ORIGINAL);
  const before = await ctx.driver.snapshotInfo(ORIGINAL);
  deepStrictEqual(before, { errorCode: 0, image: '' }, 'snapshotinfo before take');
  await ctx.driver.snapshotTake(id);
  ctx.model.taken();
  return id;
}

async function storageFormCycle(ctx: ScenarioContext, form: StorageFormCase, index: number): Promise<unknown> {
  const { driver } = ctx;
  const hashAtTake = await sha256Of(ORIGINAL, ctx.deviceSize);
  const offset = (2 + 2 * index) * MiB;
  const length = form.writeBytes ?? MiB;
  const oldData = await readRange(ORIGINAL, offset, length);
  const params = await form.open(32 * MiB / 512);
  const id = await createAndTake(ctx, params);
  ok((await driver.snapshotCollect()).includes(id), 'collect lists the snapshot');
  const info = await driver.snapshotInfo(ORIGINAL);
  deepStrictEqual(info, { errorCode: 0, image: ctx.imageName }, 'snapshotinfo after take');
  const image = `/dev/${ctx.imageName}`;
  ok((await stat(image)).isBlockDevice(), `${image} is a block device`);
  const cbt = await checkCbt(ctx, `after take with ${form.name}`);

  const data = await writeRandom(ORIGINAL, offset, length);
  ctx.model.written(offset, length);
  ok((await readRange(ORIGINAL, offset, length)).equals(data), 'the original holds the new data');
  equal(await sha256Of(image, ctx.deviceSize), hashAtTake, 'the image equals the device at take');
  equal(await driver.snapshotWaitEvent(id, 200), null, 'no event while the storage suffices');
  const held = await form.whileHeld?.(params, oldData);

  await driver.snapshotDestroy(id);
  ok(!(await driver.snapshotCollect()).includes(id), 'collect no longer lists it');
  ok(!existsSync(image), 'the image device is gone');
  const after = await form.afterDestroy(params, oldData);
  return { id, cbt, storage: params.diffStoragePath, held, after };
}

/** diff_storage_set: an existing storage (up to 512 MiB) larger than the limit is refused with -ENOSPC. */
async function tooLargeStorage(ctx: ScenarioContext): Promise<unknown> {
  const refusals: Record<string, string> = {};
  const limitSectors = (16 * MiB) / 512;
  const file = preparedFile(WORK, 'diff-too-large', 32 * MiB);
  for (const [form, path] of [['existing-file', file], ['block-device', SPARE_STORAGE]] as const) {
    const params = await helperStorage(form, path, limitSectors);
    await rejects(ctx.driver.snapshotCreate(params), (err: unknown) => {
      refusals[form] = (err as Error).message;
      return (err as { errno?: unknown }).errno === 'ENOSPC' && /larger than the limit of 16 MiB/.test((err as Error).message);
    });
  }
  equal((await stat(file)).size, 32 * MiB, 'the file is left as it was');
  closeSync(openSync(SPARE_STORAGE, fsc.O_RDWR | fsc.O_EXCL)); // the device is not left claimed
  deepStrictEqual(await ctx.driver.snapshotCollect(), [], 'no snapshot was left behind');
  return refusals;
}

async function overflowScenario(ctx: ScenarioContext): Promise<unknown> {
  const { driver } = ctx;
  const hashAtTake = await sha256Of(ORIGINAL, ctx.deviceSize);
  const id = await createAndTake(ctx, { diffStoragePath: `${WORK}/diff-small`, limitSectors: MiB / 512 });
  try {
    return await overflowChecks(ctx, id, hashAtTake);
  } finally {
    await driver.snapshotDestroy(id);
  }
}

async function overflowChecks(ctx: ScenarioContext, id: SnapshotId, hashAtTake: string): Promise<unknown> {
  const { driver } = ctx;
  const offset = 16 * MiB;
  const data = await writeRandom(ORIGINAL, offset, 8 * MiB);
  ctx.model.written(offset, 8 * MiB);
  const event = await driver.snapshotWaitEvent(id, 10_000);
  ok(event && event.code === 'corrupted', `a corrupted event, got ${JSON.stringify(event)}`);
  equal(event.errCode, -28, 'error -ENOSPC');
  equal(event.device, ORIGINAL, 'the event names the original');
  const info = await driver.snapshotInfo(ORIGINAL);
  equal(info.errorCode, -28, 'snapshotinfo error_code');
  await rejects(readRange(`/dev/${ctx.imageName}`, offset, 4096), /EIO|input\/output/i, 'the corrupted image cannot be read');
  ok((await readRange(ORIGINAL, offset, 8 * MiB)).equals(data), 'the original holds all 8 MiB written');
  return { event: { ...event, timeMs: undefined }, hashAtTake };
}

/**
 * VAL-7.0's append mode: create with no storage; the module asks for the limit with a
 * low_free_space event; append_storage gives it that many sectors of the spare disk;
 * the taken image then holds the device's data at take while the original changes.
 */
async function appendStorageScenario(ctx: ScenarioContext): Promise<unknown> {
  const { driver } = ctx;
  await rejects(driver.appendStorage('8d5c5b2e-0c61-4d8b-9a3c-7d0f5d3c1a11', SPARE, [{ offset: 0, count: 8 }]), errno('ESRCH'));
  const hashAtTake = await sha256Of(ORIGINAL, ctx.deviceSize);
  const limit = (16 * MiB) / 512;
  const id = await driver.snapshotCreateAppendable(limit);
  try {
    const request = await driver.snapshotWaitEvent(id, 5000);
    ok(request?.code === 'low_free_space', `a low_free_space event, got ${JSON.stringify(request)}`);
    equal(request.requestedSectors, limit, 'the module asks for the limit (less than diff_storage_minimum)');
    await driver.appendStorage(id, SPARE, [{ offset: 0, count: limit }]);
    // no ranges: accepted (how the driver answers a mapped snapshot's later requests)
    await driver.appendStorage(id, SPARE, []);
    await driver.snapshotAdd(id, ORIGINAL);
    await driver.snapshotTake(id);
    ctx.model.taken();
    const data = await writeRandom(ORIGINAL, 6 * MiB, MiB);
    ctx.model.written(6 * MiB, MiB);
    ok((await readRange(ORIGINAL, 6 * MiB, MiB)).equals(data), 'the original holds the new data');
    equal(await sha256Of(`/dev/${ctx.imageName}`, ctx.deviceSize), hashAtTake, 'the image equals the device at take');
    equal(await driver.snapshotWaitEvent(id, 200), null, 'no corrupted event');
    deepStrictEqual(await driver.snapshotInfo(ORIGINAL), { errorCode: 0, image: ctx.imageName });
    return { requestedSectors: request.requestedSectors };
  } finally {
    await driver.snapshotDestroy(id);
  }
}

async function main(): Promise<void> {
  const steps = new Steps();
  const started = Date.now();
  const result: Record<string, unknown> = { steps: steps.records };
  try {
    await mkdir(`${WORK}/backups`, { recursive: true });
    const health = await steps.run('detect: VAL-7 module and bdevfilter', async () => {
      const h = detectKernelModule();
      equal(h.dialect, 'val7');
      equal(h.moduleVersion, '7.0.0.0');
      equal(h.bdevfilter, true);
      equal(h.loaded, true);
      return h;
    }, true);
    ok(health);
    const driver = createKernelDriver();
    equal(driver.dialect.name, 'val7');
    equal(driver.storageByPath, true, 'the module opens the storage by path (helper-storage-forms.ts hands it a plain descriptor)');
    await steps.run('version', async () => {
      const v = await driver.version();
      deepStrictEqual(v, { major: 7, minor: 0, revision: 0, build: 0 });
      return v;
    });
    const deviceSize = await deviceBytes('vda');
    const { major, minor } = await deviceNumber('vda');
    const imageName = `veeamblksnapimg_${major}:${minor}`;
    await steps.run('attach (bdevfilter) and attach again: EALREADY', async () => {
      await driver.attach(ORIGINAL);
      await rejects(driver.attach(ORIGINAL), errno('EALREADY'));
    }, true);
    // 32 MiB: the module's minimum tracking block of 64 KiB (tracking_block_minimum_shift 16)
    const model = new CbtModel(64 * 1024, deviceSize / (64 * 1024));
    const ctx: ScenarioContext = { steps, driver, model, deviceSize, imageName };
    await steps.run('cbtinfo and cbtmap after attach', async () => {
      const info = await driver.cbtInfo(ORIGINAL);
      equal(info.deviceCapacity, deviceSize, 'capacity in bytes (tracker.c: sectors << SECTOR_SHIFT)');
      ok(/^[0-9a-f-]{36}$/.test(info.generationId) && !/^[0-]+$/.test(info.generationId), 'a generation id');
      return { info, ...((await checkCbt(ctx, 'after attach')) as object) };
    }, true);
    for (const [i, form] of STORAGE_FORMS.entries()) {
      await steps.run(`storage form "${form.name}": create, take, write, image equals the take, destroy`, () =>
        storageFormCycle(ctx, form, i),
      );
    }
    await steps.run('an existing file or block device larger than the limit: ENOSPC, in words, nothing left held', () =>
      tooLargeStorage(ctx),
    );
    await steps.run('freeze at take: a file synced just before the take is whole in the image of the mounted work disk', () =>
      freezeAtTake(driver, WORK, WORK_DEVICE, SPARE_STORAGE),
    );
    await steps.run('append_storage: a snapshot without storage asks for space and runs on ranges of the spare disk', () =>
      appendStorageScenario(ctx),
    );
    await steps.run('markdirtyblock marks the read map at once', async () => {
      const offset = 12 * MiB + 3 * 512;
      await driver.cbtDirty(ORIGINAL, [{ offset: offset / 512, count: 8 }, { offset: (14 * MiB) / 512, count: 256 }]);
      model.markedDirty(offset, 8 * 512);
      model.markedDirty(14 * MiB, 256 * 512);
      return checkCbt(ctx, 'after markdirtyblock');
    });
    await steps.run('overflow of a 1 MiB storage: corrupted event, error -28, original intact', () => overflowScenario(ctx));
    await steps.run('cbt after the overflow snapshot', () => checkCbt(ctx, 'after overflow'));
    await backupScenario(ctx, { original: ORIGINAL, work: WORK, spare: SPARE, createAndTake, checkCbt });
    await steps.run('detach, then cbtinfo and detach fail: ENOENT', async () => {
      await driver.detach(ORIGINAL);
      await rejects(driver.cbtInfo(ORIGINAL), errno('ENOENT'));
      await rejects(driver.detach(ORIGINAL), errno('ENOENT'));
    });
    await driver.close();
    await helperCliScenario(ctx, ORIGINAL, WORK);
  } catch (err) {
    result.aborted = err instanceof Error ? err.message : String(err);
  }
  result.scenarioMs = Date.now() - started;
  result.dmesg = spawnSync('/bin/dmesg', { encoding: 'utf8' }).stdout.slice(-6000);
  process.stdout.write(`VMRESULT ${JSON.stringify(result)}\n`);
}

await main();
