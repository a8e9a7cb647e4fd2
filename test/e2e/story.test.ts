/**
 * The whole story in browser mode, on the embedded engine, driven through the UI in
 * headless Chromium:
 *  1. two 64 MiB lab disks, difference storage with an 8 MiB limit, snapshot 1 of
 *     both created and taken;
 *  2. writes to disk1 at known offsets through its NBD URI (qemu-io): copy-on-write
 *     shows on the storage gauge; the write workload (Devices screen) on disk2;
 *  3. more writes overflow the limit: the corrupted event in the Events timeline and
 *     the alert; snapshot 1 destroyed through the dialog naming both devices;
 *     While snapshot 1 is held, the Live heatmap (the active CBT table, an engine
 *     extension) already shows those writes, and predicts the increment a backup
 *     taken now would copy;
 *  4. snapshot 2 taken: the "Last snapshot" view of the heatmap (the read table, as
 *     blksnap's ctl_cbtmap) now shows what changed between the two snapshots (canvas
 *     pixels: the written regions coloured, the others not) and "changed since
 *     snapshot N" predicts exactly the bytes written; a write after take 2 shows on
 *     the Live view at once.
 * Screenshots of every screen go to test-results/screenshots/ (and four of them to
 * docs/screenshots/ with BLKSNAP_UPDATE_SCREENSHOTS=1).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../helpers/browser.js';
import type { BrowserSession } from '../helpers/browser.js';
import {
  allocateStorage,
  clearFailureScreenshots,
  createAndTakeSnapshot,
  createLabDisk,
  deviceRow,
  gotoScreen,
  heatmapPixels,
  openApp,
  publishScreenshots,
  screenshot,
  startWorkload,
  stopWorkload,
  workloadWrittenMiB,
} from '../helpers/e2e-page.js';
import type { Rgb } from '../helpers/e2e-page.js';
import { hasCommand } from '../helpers/env.js';
import { buildRenderer } from '../helpers/renderer-build.js';
import { startBrowserMode } from '../helpers/web-server.js';
import type { BrowserMode } from '../helpers/web-server.js';

const run = promisify(execFile);
const canRun = hasCommand('/usr/bin/chromium') && hasCommand('qemu-io');

const MiB = 1024 * 1024;
const DISK_MIB = 64;
/** 64 KiB tracking blocks (the default minimum): 1024 blocks on a 64 MiB disk. */
const BLOCK_SIZE = 64 * 1024;
const BLOCKS = (DISK_MIB * MiB) / BLOCK_SIZE;
const LIMIT_MIB = 8;
/** First write: [0, 2 MiB) of disk1, within the limit (8 chunks of 256 KiB copied). */
const FIRST = { offset: 0, length: 2 * MiB };
/** Second write: [32 MiB, 48 MiB) of disk1, 16 MiB to copy: over the limit. */
const SECOND = { offset: 32 * MiB, length: 16 * MiB };
/** Third write, after snapshot 2: [12 MiB, 16 MiB) of disk1, inside the limit. */
const THIRD = { offset: 12 * MiB, length: 4 * MiB };
/**
 * The heatmap's colours in the light theme, as the UI promises them (written here,
 * not taken from the renderer): never-written blocks light grey; in "changed since
 * N" mode, changes at or before N a darker grey; the shown changes on a ramp from
 * blue (the oldest) through yellow (the middle) to red (the newest change number).
 */
const UNCHANGED: Rgb = [226, 229, 234];
const OLDER: Rgb = [184, 192, 206];
const NEWEST: Rgb = [214, 40, 40];
const MIDDLE: Rgb = [240, 200, 40];

/**
 * The canvas pixel at the centre of a cell: the cells fill the canvas row by row; the
 * 1024 blocks here are 64 x 16 square cells (16 px on the 1024 x 256 canvas).
 */
const GRID = { cols: 64, rows: 16 };
function cellCentre(cell: number, canvas: { width: number; height: number }): { x: number; y: number } {
  const col = cell % GRID.cols;
  const row = Math.floor(cell / GRID.cols);
  return { x: Math.floor(((col + 0.5) * canvas.width) / GRID.cols), y: Math.floor(((row + 0.5) * canvas.height) / GRID.rows) };
}

const blockOf = (byte: number): number => Math.floor(byte / BLOCK_SIZE);
/** True when tracking block `block` holds a byte of one of the ranges. */
const touches = (block: number, ...ranges: { offset: number; length: number }[]): boolean =>
  ranges.some((r) => block >= blockOf(r.offset) && block <= blockOf(r.offset + r.length - 1));

describe.skipIf(!canRun)('[chromium, qemu-io] browser mode: the whole story on the embedded engine', () => {
  let staticDir = '';
  let stack: BrowserMode | null = null;
  let session: BrowserSession | null = null;
  let firstId = '';
  let workloadMiB = 0;

  const page = () => {
    if (session === null) throw new Error('no browser session');
    return session.page;
  };
  const mode = () => {
    if (stack === null) throw new Error('browser mode did not start');
    return stack;
  };
  const cellColors = async (cells: number[]): Promise<Rgb[]> => {
    const canvas = page().getByTestId('heatmap-canvas');
    const width = Number(await canvas.getAttribute('width'));
    const height = Number(await canvas.getAttribute('height'));
    return heatmapPixels(page(), cells.map((cell) => cellCentre(cell, { width, height })));
  };
  const cellColor = async (cell: number): Promise<Rgb> => (await cellColors([cell]))[0] as Rgb;
  /**
   * Every cell of the map against the colour expected for its block; resolves with
   * the blocks that differ ("block: got r,g,b, expected r,g,b"), empty when all match.
   */
  const mismatches = async (expected: (block: number) => Rgb): Promise<string[]> => {
    const all = Array.from({ length: BLOCKS }, (_, b) => b);
    const got = await cellColors(all);
    const out: string[] = [];
    for (const b of all) {
      const want = expected(b);
      const have = got[b] as Rgb;
      if (have.join() !== want.join()) out.push(`block ${b}: got ${have.join()}, expected ${want.join()}`);
    }
    return out.slice(0, 8);
  };
  /** Writes a pattern through the device's NBD export (tracked and copied on write like any writer). */
  const nbdWrite = async (device: string, offset: number, length: number): Promise<void> => {
    const uri = `nbd+unix:///${device}?socket=${mode().nbdSocketPath}`;
    const { stdout } = await run('qemu-io', ['-f', 'raw', '-c', `write -P 0x5a ${offset} ${length}`, uri]);
    expect(stdout).toContain(`wrote ${length}/${length} bytes`);
  };
  const showHeatmap = async (device: string, view: 'live' | 'snapshot' = 'live'): Promise<void> => {
    const p = page();
    await gotoScreen(p, 'heatmap');
    await p.getByTestId('heatmap-device').selectOption(device);
    await p.getByTestId(`heatmap-view-${view}`).check();
    await expect.poll(() => p.getByTestId('heatmap-view').getAttribute('data-view')).toBe(view);
    const canvas = p.getByTestId('heatmap-canvas');
    await canvas.waitFor();
    await expect.poll(() => canvas.getAttribute('data-cell-count')).toBe(String(BLOCKS));
    // The live view has the active number; the snapshot view does not.
    await p.getByTestId('active-number').waitFor({ state: view === 'live' ? 'visible' : 'detached' });
  };
  const predictedBytes = async (): Promise<number> => Number(await page().getByTestId('predicted-size').getAttribute('data-bytes'));

  beforeAll(async () => {
    await clearFailureScreenshots('failed-story-');
    staticDir = await mkdtemp(join(tmpdir(), 'blksnap-e2e-dist-'));
    await buildRenderer(staticDir);
    // 1 MiB storage portions (instead of 1 GiB) so that a limit of a few MiB is meaningful.
    stack = await startBrowserMode({ staticDir, engineParams: { diffStorageMinimum: 2048 } });
    session = await launchBrowser({ viewport: { width: 1280, height: 1000 }, colorScheme: 'light' });
    await openApp(session.page, stack.url);
  });

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail' && session !== null) {
      const name = context.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
      await screenshot(session.page, `failed-story-${name}`).catch(() => undefined);
    }
  });

  afterAll(async () => {
    const errors = session?.errors ?? [];
    if (errors.length > 0) console.log(`browser errors:\n${errors.join('\n')}`);
    try {
      await session?.close();
    } finally {
      try {
        await stack?.close();
      } finally {
        if (staticDir !== '') await rm(staticDir, { recursive: true, force: true });
      }
    }
  });

  it('creates two 64 MiB lab disks and selects both', async () => {
    const p = page();
    await createLabDisk(p, 'disk1', DISK_MIB);
    await createLabDisk(p, 'disk2', DISK_MIB);
    for (const name of ['disk1', 'disk2']) {
      const row = deviceRow(p, name);
      await expect.poll(() => row.textContent()).toContain('64 MiB');
      await expect.poll(() => row.getByTestId('device-nbd-uri').textContent()).toContain(`nbd+unix:///${name}?socket=`);
      await p.getByLabel(`Select ${name}`).check();
    }
    await p.getByText(/\b2 of \d+ selected/).waitFor();
    // The form offers the next free name and keeps the size typed.
    await expect.poll(() => p.getByTestId('lab-disk-name').inputValue()).toBe('disk3');
    expect(await p.getByTestId('lab-disk-size').inputValue()).toBe(String(DISK_MIB));
  });

  it(`allocates difference storage with a ${LIMIT_MIB} MiB limit`, async () => {
    const p = page();
    await allocateStorage(p, mode().storageDir, LIMIT_MIB);
    await screenshot(p, 'storage');
  });

  it('creates and takes snapshot 1 of both disks', async () => {
    const p = page();
    firstId = await createAndTakeSnapshot(p);
    const card = p.locator(`[data-testid="snapshot-row"][data-snapshot-id="${firstId}"]`);
    await expect.poll(() => card.getByTestId('snapshot-device').count()).toBe(2);
    await expect.poll(() => card.getByTestId('image-nbd-uri').count()).toBe(2);
    expect(await card.getByTestId('snapshot-error-code').allTextContents()).toEqual(['0 (none)', '0 (none)']);
    await gotoScreen(p, 'devices');
    for (const name of ['disk1', 'disk2']) {
      await expect.poll(() => deviceRow(p, name).getByTestId('device-state').textContent()).toBe('In snapshot');
    }
    // Reopened, the Lab disk form still offers a free name and the size typed before.
    expect(await p.getByTestId('lab-disk-name').inputValue()).toBe('disk3');
    expect(await p.getByTestId('lab-disk-size').inputValue()).toBe(String(DISK_MIB));
    await screenshot(p, 'devices');
  });

  it('keeps snapshot 1 healthy when 2 MiB of disk1 are written through its NBD URI', async () => {
    const p = page();
    await showHeatmap('disk1');
    // Nothing written before snapshot 1: the whole map is "not written".
    expect(await mismatches(() => UNCHANGED)).toEqual([]);
    expect(await p.getByTestId('changes-number').textContent()).toBe('1');
    await screenshot(p, 'heatmap-before');

    await nbdWrite('disk1', FIRST.offset, FIRST.length);
    await gotoScreen(p, 'snapshots');
    const card = p.locator(`[data-testid="snapshot-row"][data-snapshot-id="${firstId}"]`);
    await card.getByTestId('storage-gauge').filter({ hasText: `limit ${LIMIT_MIB} MiB` }).waitFor();
    expect(await card.getByTestId('snapshot-state').textContent()).toBe('Taken');
    expect(await card.getByTestId('snapshot-error-code').allTextContents()).toEqual(['0 (none)', '0 (none)']);
    await screenshot(p, 'snapshots');
  });

  it('runs the write workload (sequential) on disk2 and reports its progress', async () => {
    const p = page();
    await startWorkload(p, 'disk2', 4, 'sequential');
    await expect.poll(() => workloadWrittenMiB(p), { timeout: 15_000 }).toBeGreaterThanOrEqual(1);
    await stopWorkload(p);
    workloadMiB = await workloadWrittenMiB(p);
    // Well inside the limit: snapshot 1 must still be healthy after this.
    expect(workloadMiB).toBeLessThan(4);
    await screenshot(p, 'devices-workload');
  });

  it('shows the workload writes on the live heatmap of disk2 while snapshot 1 is held, before any other take', async () => {
    const p = page();
    expect(workloadMiB, 'the workload step did not write').toBeGreaterThanOrEqual(1);
    await showHeatmap('disk2');
    // The Live view is the default on the embedded engine.
    expect(await p.getByTestId('heatmap-view-live').isChecked()).toBe(true);
    expect(await p.getByTestId('changes-number').textContent()).toBe('1');
    expect(await p.getByTestId('active-number').textContent()).toBe('2');
    expect(await p.getByTestId('legend-newest').textContent()).toBe('2: since last snapshot');
    // Sequential writes start at offset 0; the end of the disk is untouched.
    // Written since take 1: the active number 2, the newest, red.
    await expect.poll(() => cellColor(0), { timeout: 10_000 }).toEqual(NEWEST);
    expect(await cellColor(blockOf(workloadMiB * MiB) - 1)).toEqual(NEWEST);
    expect(await cellColor(BLOCKS - 1)).toEqual(UNCHANGED);
    // The incremental a backup taken now would copy: the workload's bytes (N defaults to 1).
    expect(await p.getByTestId('heatmap-since-n').inputValue()).toBe('1');
    await expect.poll(predictedBytes).toBeGreaterThan(0);
    expect(await predictedBytes()).toBeGreaterThanOrEqual(workloadMiB * MiB);
    expect(await predictedBytes()).toBeLessThanOrEqual((workloadMiB + 1) * MiB);
    // The snapshot table (as of take 1) does not have them yet.
    await showHeatmap('disk2', 'snapshot');
    await expect.poll(() => cellColor(0)).toEqual(UNCHANGED);
    expect(await predictedBytes()).toBe(0);
    // disk1's live map has the 2 MiB written through NBD since take 1 (red), and only those.
    await showHeatmap('disk1');
    await expect.poll(predictedBytes, { timeout: 10_000 }).toBe(FIRST.length);
    expect(await mismatches((b) => (touches(b, FIRST) ? NEWEST : UNCHANGED))).toEqual([]);
    await screenshot(p, 'heatmap-live-before-overflow');
  });

  it('overflows the storage limit and shows the corrupted event in the timeline and an alert', async () => {
    const p = page();
    await nbdWrite('disk1', SECOND.offset, SECOND.length);
    const alert = p.getByTestId('event-alert');
    await alert.filter({ hasText: 'corrupted' }).waitFor({ timeout: 10_000 });
    expect(await alert.textContent()).toContain(`Snapshot ${firstId}: the image of disk1 is corrupted (ENOSPC)`);

    await gotoScreen(p, 'events');
    const corrupted = p.locator('[data-testid="event-row"][data-code="corrupted"]');
    await corrupted.first().waitFor({ timeout: 10_000 });
    expect(await corrupted.count()).toBe(1);
    const row = (await corrupted.first().textContent()) ?? '';
    expect(row).toContain('Corrupted');
    expect(row).toContain('disk1');
    expect(row).toContain('ENOSPC');
    expect(await p.locator('[data-testid="event-row"][data-code="no_space"]').count()).toBe(1);
    await screenshot(p, 'events');

    await gotoScreen(p, 'snapshots');
    const card = p.locator(`[data-testid="snapshot-row"][data-snapshot-id="${firstId}"]`);
    await expect.poll(() => card.getByTestId('snapshot-state').textContent()).toBe('Failed');
    expect(await card.getByTestId('snapshot-error-code').allTextContents()).toEqual(['-28 ENOSPC', '0 (none)']);
    // The storage filled up to its limit.
    expect(await card.getByTestId('storage-gauge').textContent()).toContain(`used ${LIMIT_MIB} MiB / allocated ${LIMIT_MIB} MiB / limit ${LIMIT_MIB} MiB`);
    await screenshot(p, 'snapshots-after-overflow');
  });

  it('destroys snapshot 1 after a confirmation naming its devices', async () => {
    const p = page();
    await gotoScreen(p, 'snapshots');
    const card = p.locator(`[data-testid="snapshot-row"][data-snapshot-id="${firstId}"]`);
    await card.getByTestId('destroy-snapshot').click();
    const dialog = p.getByRole('dialog', { name: 'Destroy snapshot?' });
    await dialog.waitFor();
    expect(await dialog.getByTestId('destroy-devices').textContent()).toBe('disk1, disk2');
    await screenshot(p, 'destroy-dialog');
    await p.getByTestId('confirm-destroy').click();
    await dialog.waitFor({ state: 'detached' });
    await card.waitFor({ state: 'detached', timeout: 10_000 });
    await p.getByText('No snapshots.').waitFor();
    await gotoScreen(p, 'devices');
    for (const name of ['disk1', 'disk2']) {
      await expect.poll(() => deviceRow(p, name).getByTestId('device-state').textContent()).toBe('Tracked');
    }
  });

  it('shows the changes between snapshot 1 and snapshot 2 on the heatmap, with the predicted incremental size', async () => {
    const p = page();
    await createAndTakeSnapshot(p);
    await showHeatmap('disk1', 'snapshot');
    await expect.poll(() => p.getByTestId('changes-number').textContent(), { timeout: 10_000 }).toBe('2');
    // Both writes happened under change number 2, the newest of the read table: red; nothing else written.
    const afterTake2 = (b: number): Rgb => (touches(b, FIRST, SECOND) ? NEWEST : UNCHANGED);
    await expect.poll(() => mismatches(afterTake2), { timeout: 10_000 }).toEqual([]);

    // Changed since snapshot 1 (N defaults to the previous change number): exactly the blocks written.
    await p.getByTestId('heatmap-since-mode').check();
    expect(await p.getByTestId('heatmap-since-n').inputValue()).toBe('1');
    const predicted = p.getByTestId('predicted-size');
    await expect.poll(async () => Number(await predicted.getAttribute('data-bytes'))).toBe(FIRST.length + SECOND.length);
    expect(await predicted.textContent()).toBe('18 MiB');
    // Since 1: change number 2 is the only one shown, still red.
    expect(await mismatches(afterTake2)).toEqual([]);
    await screenshot(p, 'heatmap-snapshot');
  });

  it('shows a write made after snapshot 2 on the live heatmap at once, as the only change since the last snapshot', async () => {
    const p = page();
    await showHeatmap('disk1');
    expect(await p.getByTestId('active-number').textContent()).toBe('3');
    // Nothing written since take 2 yet.
    await expect.poll(predictedBytes, { timeout: 10_000 }).toBe(0);
    // Changed since 2: the earlier writes (number 2) are the older grey, the rest never written.
    expect(await mismatches((b) => (touches(b, FIRST, SECOND) ? OLDER : UNCHANGED))).toEqual([]);
    // The screen stays open: its live refresh picks the write up.
    await nbdWrite('disk1', THIRD.offset, THIRD.length);
    await expect.poll(() => cellColor(blockOf(THIRD.offset)), { timeout: 10_000 }).toEqual(NEWEST);
    await expect.poll(predictedBytes).toBe(THIRD.length);
    expect(await p.getByTestId('predicted-size').textContent()).toBe('4 MiB');
    // Changed since 2: the new write (number 3) red, the earlier ones older grey.
    expect(await mismatches((b) => (touches(b, THIRD) ? NEWEST : touches(b, FIRST, SECOND) ? OLDER : UNCHANGED))).toEqual([]);
    // Everything the map knows, coloured by change number (1..3): number 2 in the middle of the ramp, 3 red.
    await p.getByTestId('heatmap-since-mode').uncheck();
    await expect
      .poll(() => mismatches((b) => (touches(b, THIRD) ? NEWEST : touches(b, FIRST, SECOND) ? MIDDLE : UNCHANGED)))
      .toEqual([]);
    expect(await p.getByTestId('legend-newest').textContent()).toBe('3: since last snapshot');
    // Snapshot 1's alert was seen in the overflow step; the README picture is of the heatmap.
    await p.getByTestId('event-alert').getByRole('button', { name: 'Dismiss' }).click();
    await p.getByTestId('event-alert').waitFor({ state: 'detached' });
    await screenshot(p, 'heatmap');
  });

  it('shows the workload writes on disk2 on its heatmap after snapshot 2', async () => {
    const p = page();
    expect(workloadMiB, 'the workload step did not write').toBeGreaterThanOrEqual(1);
    await showHeatmap('disk2', 'snapshot');
    // Sequential writes start at offset 0; written under number 2, the newest of the read table.
    await expect.poll(() => cellColor(0), { timeout: 10_000 }).toEqual(NEWEST);
    expect(await cellColor(BLOCKS - 1)).toEqual(UNCHANGED);
    const predicted = p.getByTestId('predicted-size');
    await expect.poll(async () => Number(await predicted.getAttribute('data-bytes'))).toBeGreaterThanOrEqual(workloadMiB * MiB);
    expect(Number(await predicted.getAttribute('data-bytes'))).toBeLessThanOrEqual((workloadMiB + 1) * MiB);
  });

  it('destroys snapshot 2 and shows the Backup screen', async () => {
    const p = page();
    await gotoScreen(p, 'snapshots');
    const card = p.getByTestId('snapshot-row').first();
    await card.getByTestId('destroy-snapshot').click();
    await p.getByTestId('confirm-destroy').click();
    await p.getByText('No snapshots.').waitFor({ timeout: 10_000 });
    await gotoScreen(p, 'backup');
    await p.getByTestId('wizard-step-devices').waitFor();
    await screenshot(p, 'backup');
    await publishScreenshots(['devices', 'snapshots', 'events', 'heatmap']);
  });
});
