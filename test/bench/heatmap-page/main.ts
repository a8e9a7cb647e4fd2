/**
 * The page of test/bench/heatmap.ts (built by vite, served by the browser-mode
 * server so that its WebSocket is same-origin): the renderer's own heatmap code on a
 * 1024 x 256 canvas, timed with performance.now():
 *  - fetch: the contract's cbtMap over the WebSocket (renderer/src/api/ws-client.ts);
 *  - decode: base64 -> bytes (app/shared/base64.ts, as the heatmap slice does);
 *  - predict: countChangedSince + predictedIncrementBytes (what the screen shows);
 *  - draw: fillLayout + aggregateMax + buildPalette + paintCells + putImageData
 *    (what HeatmapCanvas does on every new map).
 * Exposes window.heatmapBench for the Node side. Typed without the DOM lib (the
 * project's Node tsconfig checks this file): the few DOM parts used are declared here.
 */
import { decodeBase64 } from '../../../app/shared/base64.js';
import { wsUrl } from '../../../app/shared/wire.js';
import { tokenFromUrl } from '../../../renderer/src/api/token.js';
import { createWsClient } from '../../../renderer/src/api/ws-client.js';
import type { SocketLike } from '../../../renderer/src/api/ws-client.js';
import { aggregateMax, countChangedSince, fillLayout, predictedIncrementBytes } from '../../../renderer/src/features/heatmap/aggregate.js';
import { paintCells } from '../../../renderer/src/features/heatmap/paint.js';
import { backgroundColor, buildPalette, packRgb } from '../../../renderer/src/features/heatmap/palette.js';
import { seededRandom } from '../../helpers/seeded-random.js';

interface ImageDataLike {
  data: Uint8ClampedArray;
}
interface Context2D {
  createImageData(width: number, height: number): ImageDataLike;
  putImageData(image: ImageDataLike, x: number, y: number): void;
  getImageData(x: number, y: number, width: number, height: number): ImageDataLike;
}
interface CanvasLike {
  width: number;
  height: number;
  getContext(kind: '2d'): Context2D | null;
}
interface PageGlobals {
  document: { getElementById(id: string): (CanvasLike & { textContent: string | null }) | null };
  location: { href: string; origin: string };
  WebSocket: new (url: string) => SocketLike;
  heatmapBench?: HeatmapBench;
}

export interface Timing {
  fetchMs: number;
  decodeMs: number;
  predictMs: number;
  drawMs: number;
  totalMs: number;
}

export interface FetchRun extends Timing {
  blockCount: number;
  blockSize: number;
  changesNumber: number;
  base64Chars: number;
  changedBlocks: number;
  predictedBytes: number;
  cellCount: number;
  blocksPerCell: number;
  /** A few painted pixels (packed RGBA) to check the drawing happened. */
  probe: number[];
}

export interface HeatmapBench {
  /** Fetches the device's CBT map through the contract and draws it; timings of one run. */
  fetchAndDraw(device: string): Promise<FetchRun>;
  /** Draws a map generated in the page (no fetch, no decode). */
  drawGenerated(blockCount: number, seed: number): FetchRun;
}

const page = globalThis as unknown as PageGlobals;
const canvasElement = page.document.getElementById('heatmap');
if (canvasElement === null) throw new Error('no canvas');
const canvas: CanvasLike = canvasElement;
const context = canvas.getContext('2d');
if (context === null) throw new Error('no 2d context');
const ctx: Context2D = context;

let cellsBuffer: Uint8Array | undefined;

function draw(map: Uint8Array, changesNumber: number): { cellCount: number; blocksPerCell: number; probe: number[] } {
  const layout = fillLayout(map.length, canvas.width, canvas.height);
  const agg = aggregateMax(map, 0, map.length, layout.cols * layout.rows, cellsBuffer);
  cellsBuffer = agg.cells;
  const palette = buildPalette({ changesNumber, sinceN: null, dark: false });
  const image = ctx.createImageData(canvas.width, canvas.height);
  const pixels = new Uint32Array(image.data.buffer);
  paintCells(pixels, canvas.width, canvas.height, agg.cells, agg.cellCount, layout, palette, packRgb(backgroundColor(false)));
  ctx.putImageData(image, 0, 0);
  const probe = [0, 1000, 100_000, pixels.length - 1].map((i) => pixels[i] ?? 0);
  return { cellCount: agg.cellCount, blocksPerCell: agg.blocksPerCell, probe };
}

const token = tokenFromUrl(page.location.href) ?? '';
const client = createWsClient({
  url: wsUrl(page.location.origin, token),
  createSocket: (url) => new page.WebSocket(url),
});

/** A simple deterministic generator (mulberry32). */

page.heatmapBench = {
  async fetchAndDraw(device) {
    const t0 = performance.now();
    const r = await client.api.cbtMap({ device });
    const t1 = performance.now();
    if (!r.ok) throw new Error(`cbtMap: ${r.error.code}: ${r.error.message}`);
    const map = decodeBase64(r.value.data);
    const t2 = performance.now();
    const changedBlocks = countChangedSince(map, 0);
    const predictedBytes = predictedIncrementBytes(map, 0, r.value.blockSize, r.value.capacityBytes);
    const t3 = performance.now();
    const drawn = draw(map, r.value.changesNumber);
    const t4 = performance.now();
    return {
      fetchMs: t1 - t0,
      decodeMs: t2 - t1,
      predictMs: t3 - t2,
      drawMs: t4 - t3,
      totalMs: t4 - t0,
      blockCount: map.length,
      blockSize: r.value.blockSize,
      changesNumber: r.value.changesNumber,
      base64Chars: r.value.data.length,
      changedBlocks,
      predictedBytes,
      ...drawn,
    };
  },
  drawGenerated(blockCount, seed) {
    const next = seededRandom(seed);
    const map = new Uint8Array(blockCount);
    // Extents of a few generations plus scattered single blocks.
    for (let g = 1; g <= 6; g++) {
      for (let e = 0; e < 200; e++) {
        const start = Math.floor(next() * blockCount);
        map.fill(g, start, Math.min(blockCount, start + Math.floor(next() * 2048)));
      }
      for (let s = 0; s < 5000; s++) map[Math.floor(next() * blockCount)] = g;
    }
    const t2 = performance.now();
    const changedBlocks = countChangedSince(map, 0);
    const predictedBytes = predictedIncrementBytes(map, 0, 65536, blockCount * 65536);
    const t3 = performance.now();
    const drawn = draw(map, 6);
    const t4 = performance.now();
    return {
      fetchMs: 0,
      decodeMs: 0,
      predictMs: t3 - t2,
      drawMs: t4 - t3,
      totalMs: t4 - t2,
      blockCount,
      blockSize: 65536,
      changesNumber: 6,
      base64Chars: 0,
      changedBlocks,
      predictedBytes,
      ...drawn,
    };
  },
};
const state = page.document.getElementById('state');
if (state !== null) state.textContent = 'ready';
