/**
 * Benchmark of the CBT heatmap for a 2,097,152-block map (the module's maximum
 * tracking block count), in headless Chromium:
 *
 *   npx tsx test/bench/heatmap.ts [--runs N] [--generated-only]
 *
 * Real path: a helper daemon (embedded engine) and the browser-mode server, a 128 GiB
 * sparse lab disk (64 KiB tracking blocks: 2,097,152 of them) whose CBT map is filled
 * with realistic contents over seven snapshot generations (an installation's extents,
 * then per generation a journal, an appended log, rewritten files, metadata updates
 * and scattered 4 KiB writes), marked through the helper's cbtDirty and advanced by
 * snapshot create/take/destroy cycles. The page (test/bench/heatmap-page, built by
 * vite and served by the same server) runs the renderer's own code: the contract's
 * cbtMap over the WebSocket (fetch), base64 decoding (decode), the changed-block count
 * and predicted size (predict), and aggregation + painting + putImageData on the
 * 1024 x 256 canvas (draw).
 * Also: the same drawing on a map generated in the page (no fetch, no decode).
 * If the real path cannot be set up, only the generated-map drawing is measured and
 * the output says so. Prints a table (medians of N runs after one warm-up) and writes
 * bench-results/heatmap.json.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'vite';
import type { BlksnapApi } from '../../app/shared/contract.js';
import { startWebServer } from '../../app/web/server.js';
import type { HelperClient } from '../../engine/protocol/client.js';
import { MAX_DIRTY_RANGES } from '../../engine/protocol/limits.js';
import { launchBrowser } from '../helpers/browser.js';
import type { BrowserSession } from '../helpers/browser.js';
import { PROJECT_ROOT } from '../helpers/renderer-build.js';
import { startBrowserMode } from '../helpers/web-server.js';
import type { BrowserMode } from '../helpers/web-server.js';
import type { FetchRun } from './heatmap-page/main.js';
import { seededRandom } from '../helpers/seeded-random.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const SECTOR = 512;
const BLOCK_COUNT = 2_097_152;
const BLOCK_SIZE = 64 * 1024;
const CAPACITY = BLOCK_COUNT * BLOCK_SIZE; // 128 GiB
const DEVICE = 'bench128g';
const GENERATIONS = 7;
/** The light background, packed as the page's pixels are (0xAABBGGRR). */
const WHITE = 0xffffffff;

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '7' }, 'generated-only': { type: 'boolean', default: false } },
});
const RUNS = Math.max(1, Number(values.runs) || 7);

function median(list: number[]): number {
  const sorted = [...list].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** mulberry32: deterministic contents from run to run. */

interface SectorRange {
  offset: number;
  count: number;
}

/** Byte range -> sector range, clamped to the device. */
function range(startByte: number, lengthBytes: number): SectorRange {
  const start = Math.max(0, Math.min(CAPACITY - SECTOR, Math.floor(startByte / SECTOR) * SECTOR));
  const end = Math.min(CAPACITY, start + Math.max(SECTOR, Math.ceil(lengthBytes / SECTOR) * SECTOR));
  return { offset: start / SECTOR, count: (end - start) / SECTOR };
}

/** The writes of one generation (0: the installation). */
function generationWrites(generation: number, next: () => number): SectorRange[] {
  const out: SectorRange[] = [];
  const logUniform = (min: number, max: number) => Math.exp(Math.log(min) + next() * (Math.log(max) - Math.log(min)));
  if (generation === 0) {
    out.push(range(0, 512 * MiB)); // filesystem metadata
    for (let i = 0; i < 400; i++) out.push(range(next() * CAPACITY * 0.6, logUniform(MiB, 256 * MiB)));
    return out;
  }
  out.push(range(GiB, 128 * MiB)); // journal, rewritten every generation
  out.push(range(80 * GiB + (generation - 1) * 256 * MiB, 256 * MiB)); // an appended log
  for (let i = 0; i < 40; i++) out.push(range(next() * CAPACITY, logUniform(MiB, 64 * MiB))); // rewritten files
  for (let i = 0; i < 800; i++) out.push(range(next() * 512 * MiB, 4096)); // inode / bitmap updates
  for (let i = 0; i < 4_000; i++) out.push(range(next() * CAPACITY, 4096)); // scattered 4 KiB writes
  return out;
}

async function snapshotCycle(api: BlksnapApi, storageDir: string, n: number): Promise<void> {
  const created = await api.snapshotCreate({ devices: [DEVICE], storagePath: join(storageDir, `cycle-${n}.img`), limitBytes: 64 * MiB });
  if (!created.ok) throw new Error(`snapshotCreate: ${created.error.code}: ${created.error.message}`);
  const taken = await api.snapshotTake({ snapshotId: created.value.snapshotId });
  if (!taken.ok) throw new Error(`snapshotTake: ${taken.error.code}: ${taken.error.message}`);
  const destroyed = await api.snapshotDestroy({ snapshotId: created.value.snapshotId });
  if (!destroyed.ok) throw new Error(`snapshotDestroy: ${destroyed.error.code}: ${destroyed.error.message}`);
}

/** The 128 GiB lab disk and its CBT contents; returns how long the setup took. */
async function prepareDevice(stack: BrowserMode): Promise<number> {
  const started = performance.now();
  const bridge = stack.server.bridge;
  if (bridge === null) throw new Error('the web server has no bridge');
  const api = bridge.api;
  const disk = await api.createLabDisk({ name: DEVICE, sizeBytes: CAPACITY });
  if (!disk.ok) throw new Error(`createLabDisk: ${disk.error.code}: ${disk.error.message}`);
  // The first snapshot attaches the tracker.
  await snapshotCycle(api, stack.storageDir, 0);
  const client: HelperClient = await bridge.link.current();
  const next = seededRandom(20261121);
  for (let g = 0; g < GENERATIONS; g++) {
    const writes = generationWrites(g, next);
    for (let i = 0; i < writes.length; i += MAX_DIRTY_RANGES) {
      await client.call('cbtDirty', { device: DEVICE, ranges: writes.slice(i, i + MAX_DIRTY_RANGES) });
    }
    await snapshotCycle(api, stack.storageDir, g + 1);
  }
  const info = await api.cbtInfo({ device: DEVICE });
  if (!info.ok) throw new Error(`cbtInfo: ${info.error.code}: ${info.error.message}`);
  if (info.value.blockCount !== BLOCK_COUNT || info.value.blockSize !== BLOCK_SIZE) {
    throw new Error(`expected ${BLOCK_COUNT} blocks of ${BLOCK_SIZE} bytes, the engine made ${info.value.blockCount} of ${info.value.blockSize}`);
  }
  return performance.now() - started;
}

async function buildPage(outDir: string): Promise<void> {
  await build({
    configFile: false,
    root: join(PROJECT_ROOT, 'test', 'bench', 'heatmap-page'),
    base: './',
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true, assetsInlineLimit: 0, modulePreload: { polyfill: false }, sourcemap: false },
  });
}

interface Summary {
  fetchMs: number;
  decodeMs: number;
  predictMs: number;
  drawMs: number;
  totalMs: number;
}

const tenth = (ms: number): number => Math.round(ms * 10) / 10;

function summarize(runs: FetchRun[]): Summary {
  return {
    fetchMs: tenth(median(runs.map((r) => r.fetchMs))),
    decodeMs: tenth(median(runs.map((r) => r.decodeMs))),
    predictMs: tenth(median(runs.map((r) => r.predictMs))),
    drawMs: tenth(median(runs.map((r) => r.drawMs))),
    totalMs: tenth(median(runs.map((r) => r.totalMs))),
  };
}

/** A run for the JSON file: times to 0.1 ms, without the pixel probe. */
function sample({ probe: _probe, ...run }: FetchRun): Omit<FetchRun, 'probe'> {
  return {
    ...run,
    fetchMs: tenth(run.fetchMs),
    decodeMs: tenth(run.decodeMs),
    predictMs: tenth(run.predictMs),
    drawMs: tenth(run.drawMs),
    totalMs: tenth(run.totalMs),
  };
}

function checkRun(run: FetchRun): void {
  if (run.blockCount !== BLOCK_COUNT) throw new Error(`the page drew ${run.blockCount} blocks, expected ${BLOCK_COUNT}`);
  if (run.cellCount !== 262_144 || run.blocksPerCell !== 8) {
    throw new Error(`unexpected aggregation: ${run.cellCount} cells of ${run.blocksPerCell} blocks`);
  }
  if (run.changedBlocks === 0) throw new Error('the map has no changed block');
  // Block 0 is written in every map drawn here: its pixel is not the background.
  if (run.probe[0] === WHITE) throw new Error('the first cell was not painted');
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'blksnap-bench-heatmap-'));
  let stack: BrowserMode | null = null;
  let session: BrowserSession | null = null;
  let fallbackServer: { close(): Promise<void> } | null = null;
  try {
    const pageDir = join(work, 'page');
    await buildPage(pageDir);

    let source: 'server' | 'generated-only' = 'server';
    let setupMs = 0;
    let fallbackReason: string | null = null;
    let url: string;
    try {
      if (values['generated-only'] === true) throw new Error('--generated-only was given');
      stack = await startBrowserMode({ staticDir: pageDir, engineParams: { diffStorageMinimum: 2048 } });
      setupMs = await prepareDevice(stack);
      url = stack.url;
    } catch (error) {
      fallbackReason = error instanceof Error ? error.message : String(error);
      source = 'generated-only';
      await stack?.close();
      stack = null;
      // Serve the page alone (no helper): only the generated-map drawing is measured.
      const server = await startWebServer({ staticDir: pageDir, log: () => {}, launch: null, helperSocket: join(work, 'none.sock'), stateDir: work });
      fallbackServer = server;
      url = server.url;
    }

    session = await launchBrowser({ viewport: { width: 1280, height: 600 } });
    const { page } = session;
    await page.goto(url);
    await page.locator('#state', { hasText: 'ready' }).waitFor({ timeout: 20_000 });
    const browserVersion = session.context.browser()?.version() ?? (await page.evaluate<string>('navigator.userAgent'));

    const serverRuns: FetchRun[] = [];
    if (source === 'server') {
      await page.evaluate<FetchRun, string>((device) => (globalThis as unknown as { heatmapBench: { fetchAndDraw(d: string): Promise<FetchRun> } }).heatmapBench.fetchAndDraw(device), DEVICE);
      for (let i = 0; i < RUNS; i++) {
        serverRuns.push(
          await page.evaluate<FetchRun, string>((device) => (globalThis as unknown as { heatmapBench: { fetchAndDraw(d: string): Promise<FetchRun> } }).heatmapBench.fetchAndDraw(device), DEVICE),
        );
      }
      serverRuns.forEach(checkRun);
      await mkdir(join(PROJECT_ROOT, 'test-results', 'screenshots'), { recursive: true });
      await page.locator('#heatmap').screenshot({ path: join(PROJECT_ROOT, 'test-results', 'screenshots', 'bench-heatmap.png') });
    }
    const generatedRuns: FetchRun[] = [];
    const drawGenerated = (seed: number) =>
      page.evaluate<FetchRun, number[]>(
        ([count, s]) => (globalThis as unknown as { heatmapBench: { drawGenerated(c: number, s: number): FetchRun } }).heatmapBench.drawGenerated(count as number, s as number),
        [BLOCK_COUNT, seed],
      );
    await drawGenerated(0);
    for (let i = 0; i < RUNS; i++) generatedRuns.push(await drawGenerated(i + 1));
    generatedRuns.forEach(checkRun);
    if (session.errors.length > 0) console.error(`browser errors:\n${session.errors.join('\n')}`);

    const rows: [string, Summary][] = [];
    if (serverRuns.length > 0) rows.push(['server: cbtMap over WebSocket', summarize(serverRuns)]);
    rows.push(['generated in the page', summarize(generatedRuns)]);
    const fmt = (n: number) => (n === 0 ? '-' : n.toFixed(1)).padStart(10);
    console.log(`Heatmap of ${BLOCK_COUNT.toLocaleString('en-US')} blocks (${BLOCK_SIZE / 1024} KiB, ${CAPACITY / GiB} GiB device) on a 1024 x 256 canvas, Chromium ${browserVersion}, median of ${RUNS} runs:`);
    if (source === 'server') {
      const first = serverRuns[0] as FetchRun;
      console.log(
        `  map: ${first.changedBlocks.toLocaleString('en-US')} changed blocks, change numbers up to ${first.changesNumber}, ` +
          `base64 ${(first.base64Chars / MiB).toFixed(2)} MiB on the wire; setup ${(setupMs / 1000).toFixed(1)} s`,
      );
    } else {
      console.log(`  THE SERVER PATH WAS NOT AVAILABLE (${fallbackReason}); only the generated-map drawing was measured.`);
    }
    console.log(`${'source'.padEnd(32)}${'fetch ms'.padStart(10)}${'decode ms'.padStart(10)}${'predict ms'.padStart(11)}${'agg+draw ms'.padStart(12)}${'total ms'.padStart(10)}`);
    for (const [name, s] of rows) {
      console.log(`${name.padEnd(32)}${fmt(s.fetchMs)}${fmt(s.decodeMs)}${fmt(s.predictMs).padStart(11)}${fmt(s.drawMs).padStart(12)}${fmt(s.totalMs)}`);
    }

    const resultsDir = join(PROJECT_ROOT, 'bench-results');
    await mkdir(resultsDir, { recursive: true });
    const file = join(resultsDir, 'heatmap.json');
    await writeFile(
      file,
      `${JSON.stringify(
        {
          benchmark: 'heatmap',
          date: new Date().toISOString(),
          node: process.version,
          browser: `chromium ${browserVersion}`,
          source,
          fallbackReason,
          blockCount: BLOCK_COUNT,
          blockSize: BLOCK_SIZE,
          capacityBytes: CAPACITY,
          canvas: { width: 1024, height: 256, cells: 262_144, blocksPerCell: 8 },
          runs: RUNS,
          setupMs: Math.round(setupMs),
          map: serverRuns[0]
            ? { changedBlocks: serverRuns[0].changedBlocks, changesNumber: serverRuns[0].changesNumber, base64Chars: serverRuns[0].base64Chars }
            : null,
          medians: Object.fromEntries(rows.map(([name, s]) => [name, s])),
          samples: { server: serverRuns.map(sample), generated: generatedRuns.map(sample) },
        },
        null,
        2,
      )}\n`,
    );
    console.log(`Wrote ${file}`);
  } finally {
    await session?.close();
    await stack?.close();
    await fallbackServer?.close();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
