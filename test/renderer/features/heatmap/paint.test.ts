import { describe, expect, it } from 'vitest';
import { fillLayout } from '../../../../renderer/src/features/heatmap/aggregate.js';
import { paintCells } from '../../../../renderer/src/features/heatmap/paint.js';
import { buildPalette, colorOf, packRgb, unchangedColor } from '../../../../renderer/src/features/heatmap/palette.js';

describe('palette', () => {
  it('packs RGBA little-endian for a Uint32Array view of ImageData', () => {
    const px = new Uint32Array([packRgb([1, 2, 3])]);
    expect(Array.from(new Uint8Array(px.buffer))).toEqual([1, 2, 3, 255]);
  });

  it('gives 0 its own colour and ramps 1..current from cool to hot', () => {
    const opts = { changesNumber: 5, sinceN: null, dark: false };
    expect(colorOf(0, opts)).toEqual(unchangedColor(false));
    const first = colorOf(1, opts);
    const last = colorOf(5, opts);
    expect(first[2]).toBeGreaterThan(first[0]); // bluish
    expect(last[0]).toBeGreaterThan(last[2]); // reddish
    expect(buildPalette(opts)).toHaveLength(256);
  });

  it('in "since N" mode draws blocks <= N alike and only newer ones on the ramp', () => {
    const opts = { changesNumber: 6, sinceN: 3, dark: true };
    expect(colorOf(1, opts)).toEqual(colorOf(3, opts));
    expect(colorOf(4, opts)).not.toEqual(colorOf(3, opts));
    expect(colorOf(6, opts)).not.toEqual(colorOf(4, opts));
  });
});

describe('paintCells', () => {
  it('fills one pixel per cell when cells fill the canvas', () => {
    const w = 4;
    const h = 2;
    const cells = Uint8Array.from([0, 1, 2, 3, 3, 2, 1, 0]);
    const palette = new Uint32Array(256).map((_, i) => i + 100);
    const pixels = new Uint32Array(w * h);
    paintCells(pixels, w, h, cells, 8, { cols: 4, rows: 2 }, palette, 7);
    expect(Array.from(pixels)).toEqual([100, 101, 102, 103, 103, 102, 101, 100]);
  });

  it('stretches cells over the whole canvas: 3 cells across 8 pixels reach the right edge', () => {
    const w = 8;
    const h = 4;
    const palette = new Uint32Array(256).map((_, i) => i + 100);
    const pixels = new Uint32Array(w * h);
    paintCells(pixels, w, h, Uint8Array.from([1, 2, 3]), 3, { cols: 3, rows: 1 }, palette, 7);
    const row = (y: number) => Array.from(pixels.subarray(y * w, (y + 1) * w));
    // edges at floor(8/3) = 2 and floor(16/3) = 5
    expect(row(0)).toEqual([101, 101, 102, 102, 102, 103, 103, 103]);
    expect(row(3)).toEqual(row(0));
  });

  it('leaves a 1-pixel gap between cells of 6 pixels or more, and no wider blank anywhere', () => {
    const w = 20;
    const h = 12;
    const palette = new Uint32Array(256).map((_, i) => i + 100);
    const pixels = new Uint32Array(w * h);
    paintCells(pixels, w, h, Uint8Array.from([1, 2, 3, 4, 5, 6]), 6, { cols: 3, rows: 2 }, palette, 7);
    const row = (y: number) => Array.from(pixels.subarray(y * w, (y + 1) * w));
    // column edges 0, 6, 13, 20; row edges 0, 6, 12
    expect(row(0)).toEqual([101, 101, 101, 101, 101, 7, 102, 102, 102, 102, 102, 102, 7, 103, 103, 103, 103, 103, 103, 7]);
    expect(row(5).every((p) => p === 7)).toBe(true);
    expect(row(10)).toEqual([104, 104, 104, 104, 104, 7, 105, 105, 105, 105, 105, 105, 7, 106, 106, 106, 106, 106, 106, 7]);
  });

  // Its speed is measured by test/bench/heatmap.ts, not asserted here.
  it('paints a 2,097,152-block map aggregated to 1024x256, one cell per pixel', () => {
    const cells = new Uint8Array(1024 * 256).map((_, i) => i & 255);
    const pixels = new Uint32Array(1024 * 256);
    const palette = buildPalette({ changesNumber: 255, sinceN: null, dark: false });
    paintCells(pixels, 1024, 256, cells, cells.length, fillLayout(cells.length, 1024, 256), palette, 0);
    expect(pixels[300]).toBe(palette[300 & 255]);
    expect(pixels[1024 * 256 - 1]).toBe(palette[(1024 * 256 - 1) & 255]);
  });
});
