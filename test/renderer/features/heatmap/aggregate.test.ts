import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  aggregateMax,
  cellAt,
  cellDetail,
  countChangedSince,
  gridLayout,
  predictedIncrementBytes,
  viewWindow,
} from '../../../../renderer/src/features/heatmap/aggregate.js';

/** The obvious (slow) reference: max over each cell's blocks. */
function reference(map: Uint8Array, start: number, end: number, maxCells: number): number[] {
  const n = end - start;
  const per = Math.max(1, Math.ceil(n / maxCells));
  const out: number[] = [];
  for (let b = start; b < end; b += per) {
    out.push(Math.max(0, ...Array.from(map.subarray(b, Math.min(end, b + per)))));
  }
  return out;
}

describe('aggregateMax', () => {
  it('copies blocks one-to-one when they fit', () => {
    const map = Uint8Array.from([0, 3, 1, 0, 2]);
    const agg = aggregateMax(map, 0, 5, 10);
    expect(agg.blocksPerCell).toBe(1);
    expect(agg.cellCount).toBe(5);
    expect(Array.from(agg.cells.subarray(0, 5))).toEqual([0, 3, 1, 0, 2]);
  });

  it('keeps the maximum change number of each cell, so a single changed block stays visible', () => {
    const map = new Uint8Array(1000);
    map[517] = 9;
    const agg = aggregateMax(map, 0, 1000, 10);
    expect(agg.blocksPerCell).toBe(100);
    expect(agg.cellCount).toBe(10);
    expect(Array.from(agg.cells)).toEqual([0, 0, 0, 0, 0, 9, 0, 0, 0, 0]);
  });

  it('matches the reference on random maps, windows and cell budgets', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 500 }),
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 1, max: 600 }),
        (map, a, b, maxCells) => {
          const start = a % map.length;
          const end = start + 1 + (b % (map.length - start));
          const agg = aggregateMax(map, start, end, maxCells);
          const expected = reference(map, start, end, maxCells);
          expect(agg.cellCount).toBe(expected.length);
          expect(agg.cellCount).toBeLessThanOrEqual(maxCells);
          expect(Array.from(agg.cells.subarray(0, agg.cellCount))).toEqual(expected);
        },
      ),
    );
  });

  it('reuses an output buffer that is large enough', () => {
    const out = new Uint8Array(64);
    const agg = aggregateMax(Uint8Array.from([1, 2, 3, 4]), 0, 4, 2, out);
    expect(agg.cells).toBe(out);
    expect(Array.from(out.subarray(0, 2))).toEqual([2, 4]);
  });

  it('clamps the window to the map', () => {
    const agg = aggregateMax(Uint8Array.from([5, 6]), -3, 99, 10);
    expect([agg.start, agg.end, agg.cellCount]).toEqual([0, 2, 2]);
  });

  it('aggregates 2,097,152 blocks into a 1024x256 canvas quickly', () => {
    const map = new Uint8Array(2_097_152);
    for (let i = 0; i < map.length; i += 97) map[i] = (i % 7) + 1;
    const t0 = performance.now();
    const agg = aggregateMax(map, 0, map.length, 1024 * 256);
    const ms = performance.now() - t0;
    expect(agg.blocksPerCell).toBe(8);
    expect(agg.cellCount).toBe(262_144);
    expect(ms).toBeLessThan(500);
  });
});

describe('gridLayout', () => {
  it('uses one pixel per cell when the canvas is full', () => {
    expect(gridLayout(1024 * 256, 1024, 256)).toEqual({ cellPx: 1, cols: 1024, rows: 256 });
  });

  it('enlarges cells when there are few, and they still fit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1024 * 256 }), (count) => {
        const g = gridLayout(count, 1024, 256);
        expect(g.cols * g.cellPx).toBeLessThanOrEqual(1024);
        expect(g.rows * g.cellPx).toBeLessThanOrEqual(256);
        expect(g.cols * g.rows).toBeGreaterThanOrEqual(count);
      }),
    );
    expect(gridLayout(64, 1024, 256).cellPx).toBe(32);
    expect(gridLayout(4096, 1024, 256).cellPx).toBe(8);
  });
});

describe('change counting and predicted size', () => {
  it('counts blocks with a change number greater than N', () => {
    const map = Uint8Array.from([0, 1, 2, 3, 3, 0, 1]);
    expect(countChangedSince(map, 0)).toBe(5);
    expect(countChangedSince(map, 1)).toBe(3);
    expect(countChangedSince(map, 3)).toBe(0);
  });

  it('predicts changed blocks x block size, the last block only up to the capacity', () => {
    const map = Uint8Array.from([2, 0, 2, 1]);
    expect(predictedIncrementBytes(map, 1, 4096, 4 * 4096)).toBe(2 * 4096);
    // capacity ends 1024 bytes into the last block
    const tail = Uint8Array.from([0, 0, 5]);
    expect(predictedIncrementBytes(tail, 0, 4096, 2 * 4096 + 1024)).toBe(1024);
    expect(predictedIncrementBytes(new Uint8Array(0), 0, 4096, 0)).toBe(0);
  });
});

describe('cells under the pointer', () => {
  it('maps pixels to cells and cells to block and byte ranges', () => {
    const map = new Uint8Array(100);
    map[42] = 7;
    const agg = aggregateMax(map, 10, 100, 30); // 90 blocks, 3 per cell, 30 cells
    const layout = gridLayout(agg.cellCount, 100, 50);
    const cell = cellAt(0, 0, layout, agg.cellCount);
    expect(cell).toBe(0);
    expect(cellAt(-1, 0, layout, agg.cellCount)).toBeNull();
    expect(cellAt(99_999, 0, layout, agg.cellCount)).toBeNull();
    expect(cellAt(0, 49, layout, agg.cellCount)).toBeNull();
    // block 42 is in cell (42 - 10) / 3 = 10
    const d = cellDetail(agg, 10, 512, 100 * 512);
    expect(d).toEqual({ firstBlock: 40, lastBlock: 42, firstByte: 40 * 512, endByte: 43 * 512, changeNumber: 7 });
    const last = cellDetail(agg, 29, 512, 100 * 512 - 100);
    expect(last.lastBlock).toBe(99);
    expect(last.endByte).toBe(100 * 512 - 100);
  });

  it('computes a zoom window that stays inside the map', () => {
    expect(viewWindow(1000, 1, 500)).toEqual({ start: 0, end: 1000 });
    expect(viewWindow(1000, 4, 100)).toEqual({ start: 100, end: 350 });
    expect(viewWindow(1000, 4, 900)).toEqual({ start: 750, end: 1000 });
    expect(viewWindow(0, 2, 0)).toEqual({ start: 0, end: 0 });
  });
});
