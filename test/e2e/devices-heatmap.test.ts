/**
 * Devices as administrators know them, and a heatmap worth reading, in browser mode
 * on the embedded engine, driven through the UI in headless Chromium:
 *  1. a 64 MiB lab disk gets a DOS partition table through its NBD URI (partition 1
 *     at 1 MiB, partition 2 at 16 MiB) and 4 MiB of writes at 20 MiB; the heatmap
 *     fills its canvas at ×1, labels a byte ruler, draws the partition boundaries
 *     where the table puts them, and a drag over 16 MiB–32 MiB reports the 4 MiB
 *     changed there;
 *  2. [root] the same image attached to a loop device, its partitions added and the
 *     second one mounted: the Devices tree shows the loop device with its partitions
 *     under it, each with why it cannot be used, and the lab disk warns that writes
 *     bypass the engine, also when a snapshot is planned.
 * Screenshots: test-results/screenshots/heatmap-partitions.png, devices-tree.png
 * (copied to docs/screenshots/ with BLKSNAP_UPDATE_SCREENSHOTS=1).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { dosTable } from '../helpers/dos-table.js';
import { useE2eApp } from '../helpers/e2e-app.js';
import { createLabDisk, deviceRow, gotoScreen, heatmapPixels, publishScreenshots, screenshot } from '../helpers/e2e-page.js';
import type { Rgb } from '../helpers/e2e-page.js';
import { canUseLoop, hasCommand } from '../helpers/env.js';

const run = promisify(execFile);
const canRun = hasCommand('/usr/bin/chromium') && hasCommand('qemu-io');
const canLoop = canUseLoop && hasCommand('partx') && hasCommand('mkfs.ext4') && hasCommand('losetup');

const MiB = 1024 * 1024;
/** The light theme's colour of a block never written (the UI's promise, as in story.test.ts). */
const UNCHANGED: Rgb = [226, 229, 234];

describe.skipIf(!canRun)('[chromium, qemu-io] the device tree and the heatmap with ruler, partitions and selection', () => {
  const app = useE2eApp({ name: 'devheat', browser: { viewport: { width: 1280, height: 1000 }, colorScheme: 'light' } });
  const page = app.page;
  const mode = app.mode;
  let loop: string | null = null;
  let mountDir: string | null = null;

  afterAll(async () => {
    if (mountDir !== null) await run('umount', [mountDir]).catch(() => undefined);
    if (loop !== null) await run('losetup', ['--detach', loop]).catch(() => undefined);
  });

  it('draws a filled map at ×1 with a byte ruler and the partition boundaries of the table on the disk; a drag reports the changed bytes of the range', async () => {
    const p = page();
    await createLabDisk(p, 'disk1', 64);
    const uri = `nbd+unix:///disk1?socket=${mode().nbdSocketPath}`;
    const tableFile = join(mode().dir, 'mbr.bin');
    // partition 1 at 1 MiB (15 MiB), partition 2 at 16 MiB (48 MiB)
    await writeFile(tableFile, dosTable([
      { firstLba: 2048, sectors: 30720 },
      { firstLba: 32768, sectors: 98304 },
    ]));
    await run('qemu-io', ['-f', 'raw', '-c', `write -s ${tableFile} 0 512`, uri]);
    const { stdout } = await run('qemu-io', ['-f', 'raw', '-c', `write -P 0x5a ${20 * MiB} ${4 * MiB}`, uri]);
    expect(stdout).toContain(`wrote ${4 * MiB}/${4 * MiB} bytes`);

    await gotoScreen(p, 'heatmap');
    await p.getByTestId('heatmap-device').selectOption('disk1');
    const canvas = p.getByTestId('heatmap-canvas');
    await expect.poll(() => canvas.getAttribute('data-cell-count')).toBe('1024');
    // the table is read from the disk: partition 1 starts at 1 MiB, partition 2 at 16 MiB (where 1 ends)
    await expect.poll(() => p.getByTestId('heatmap-partitions').textContent(), { timeout: 10_000 }).toBe('Partitions: partition 1 1 MiB–16 MiB, partition 2 16 MiB–64 MiB');
    const lines = p.getByTestId('heatmap-partition-line');
    expect(await lines.evaluateAll((els) => els.map((e) => e.getAttribute('data-byte')))).toEqual([String(1 * MiB), String(16 * MiB), String(16 * MiB)]);
    const ruler = p.getByTestId('heatmap-ruler').locator('[data-byte]');
    expect(await ruler.allTextContents()).toEqual(['0 B', '16 MiB', '32 MiB', '48 MiB']);

    // ×1 fills the width and the height: the bottom-right cell (block 1023, never written) is drawn
    const width = Number(await canvas.getAttribute('width'));
    const height = Number(await canvas.getAttribute('height'));
    const [bottomRight, topLeft] = await heatmapPixels(p, [
      { x: width - 4, y: height - 4 },
      { x: 4, y: 4 },
    ]);
    expect(bottomRight).toEqual(UNCHANGED);
    // block 0 holds the table just written: not the never-written colour
    expect(topLeft).not.toEqual(UNCHANGED);

    // drag from the first cell of 16 MiB (row 4) to the last cell before 32 MiB (row 7, column 63)
    const box = await canvas.boundingBox();
    if (box === null) throw new Error('no canvas box');
    const at = (col: number, row: number) => ({ x: box.x + ((col * 16 + 8) * box.width) / width, y: box.y + ((row * 16 + 8) * box.height) / height });
    const from = at(0, 4);
    const to = at(63, 7);
    await p.mouse.move(from.x, from.y);
    await p.mouse.down();
    await p.mouse.move(to.x, to.y, { steps: 5 });
    await p.mouse.up();
    const selection = p.getByTestId('heatmap-selection');
    await expect.poll(() => selection.textContent()).toMatch(/^Selected bytes 16 MiB–32 MiB \(16 MiB\): 4 MiB changed since snapshot \d+ \(64 changed blocks × 64 KiB\)/);
    await screenshot(p, 'heatmap-partitions');
  });

  it.skipIf(!canLoop)('[root] shows the loop device over the image as a tree with its partitions, and warns that writes to its mounted partition bypass the engine', async () => {
    const p = page();
    await gotoScreen(p, 'devices');
    const image = await deviceRow(p, 'disk1').getAttribute('data-path');
    if (image === null) throw new Error('no image path');
    loop = (await run('losetup', ['--find', '--show', image])).stdout.trim();
    const name = loop.replace('/dev/', '');
    if (!existsSync(`/sys/class/block/${name}p1`)) await run('partx', ['--add', loop]);
    await run('mkfs.ext4', ['-q', '-L', 'lab-data', `${loop}p2`]);
    mountDir = join(mode().dir, 'mnt');
    await mkdir(mountDir);
    await run('mount', [`${loop}p2`, mountDir]);

    const warning = deviceRow(p, 'disk1').getByTestId('device-bypass');
    await expect.poll(() => warning.textContent(), { timeout: 10_000 }).toBe(
      `Writes that bypass the engine: the image is attached to ${loop} and ${loop}p2 is mounted at ${mountDir}: writes there bypass the engine. A snapshot would miss them.`,
    );
    // the loop device and its partitions, under it; the partition mounted says so and cannot be used
    const rows = [loop, `${loop}p1`, `${loop}p2`].map((path) => p.locator(`[data-testid="device-row"][data-device-id="${path}"]`));
    await expect.poll(() => Promise.all(rows.map((r) => r.getAttribute('data-depth')))).toEqual(['0', '1', '1']);
    expect(await rows[2]?.getByTestId('device-note').textContent()).toBe(`In use, so the engine cannot open it: mounted at ${mountDir}.`);
    expect(await rows[0]?.getByTestId('device-note').textContent()).toBe(`In use, so the engine cannot open it: ${name}p2 is mounted at ${mountDir}.`);
    await screenshot(p, 'devices-tree');

    await p.getByLabel('Select disk1').check();
    await gotoScreen(p, 'snapshots');
    await expect.poll(() => p.getByTestId('create-bypass-warning').textContent()).toMatch(/^Writes may bypass the engine\. disk1: the image is attached to /);
    await run('umount', [mountDir]);
    mountDir = null;
    await run('losetup', ['--detach', loop]);
    loop = null;
    await expect.poll(() => p.getByTestId('create-bypass-warning').count(), { timeout: 10_000 }).toBe(0);
    await publishScreenshots(['devices-tree', 'heatmap-partitions']);
  });
});
