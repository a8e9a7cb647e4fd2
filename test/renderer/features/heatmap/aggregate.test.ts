import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  aggregateMax,
  cellAt,
  cellDetail,
  cellEdge,
  cellFirstBlock,
  countChangedSince,
  fillLayout,
  predictedIncrementBytes,
  viewWindow,
} from '../../../../renderer/src/features/heatmap/aggregate.js';

/** The obvious (slow) reference: cell i holds blocks [start + floor(i*n/cells), start + floor((i+1)*n/cells)). */
function reference(map: Uint8Array, start: number, end: number, cells: number): number[] {
  const n = end - start;
  const count = Math.min(n, cells);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const a = start + Math.floor((i * n) / count);
    const b = start + Math.floor(((i + 1) * n) / count);
    out.push(Math.max(0, ...Array.from(map.subarray(a, b))));
  }
  return out;
}

describe('aggregateMax', () => {
  it('copies blocks one-to-one when there are as many cells', () => {
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

  it('splits blocks that do not divide evenly into cells of n and n + 1 blocks, every block in exactly one cell', () => {
    // 10 blocks into 4 cells: [0,2) [2,5) [5,7) [7,10)
    expect([0, 1, 2, 3, 4].map((i) => cellFirstBlock(i, 4, 0, 10))).toEqual([0, 2, 5, 7, 10]);
    const map = Uint8Array.from([1, 0, 0, 0, 4, 0, 6, 0, 0, 8]);
    expect(Array.from(aggregateMax(map, 0, 10, 4).cells)).toEqual([1, 4, 6, 8]);
  });

  it('matches the reference on random maps, windows and cell budgets', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 500 }),
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 1, max: 600 }),
        (map, a, b, cells) => {
          const start = a % map.length;
          const end = start + 1 + (b % (map.length - start));
          const agg = aggregateMax(map, start, end, cells);
          const expected = reference(map, start, end, cells);
          expect(agg.cellCount).toBe(expected.length);
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

  it('aggregates 2,097,152 blocks into a 1024x256 canvas, 8 blocks per cell', () => {
    const map = new Uint8Array(2_097_152);
    for (let i = 0; i < map.length; i += 97) map[i] = (i % 7) + 1;
    const agg = aggregateMax(map, 0, map.length, 1024 * 256);
    expect(agg.blocksPerCell).toBe(8);
    expect(agg.cellCount).toBe(262_144);
    expect(agg.cells[0]).toBe(1);
  });
});

describe('fillLayout (no blank strip at any zoom)', () => {
  it('one cell per pixel when there are more blocks than pixels', () => {
    expect(fillLayout(2_097_152, 1024, 256)).toEqual({ cols: 1024, rows: 256 });
  });

  it('a 64 MiB lab disk of 64 KiB blocks: 64 x 16 cells of 16 x 16 pixels', () => {
    expect(fillLayout(1024, 1024, 256)).toEqual({ cols: 64, rows: 16 });
  });

  it('1000 blocks: 50 x 20 cells, one block each (cells 20.48 x 12.8 px)', () => {
    expect(fillLayout(1000, 1024, 256)).toEqual({ cols: 50, rows: 20 });
  });

  it('a prime number of blocks: one cell short per row at most, still filling the canvas', () => {
    const g = fillLayout(1009, 1024, 256);
    expect(g.cols * g.rows).toBeGreaterThan(1009 - g.rows);
  });

  it('640 blocks (the grid that left a blank strip right and below): rows of cells reaching both edges', () => {
    const g = fillLayout(640, 1024, 256);
    expect(g.cols * g.rows).toBeLessThanOrEqual(640);
    expect(cellEdge(g.cols, g.cols, 1024)).toBe(1024);
    expect(cellEdge(g.rows, g.rows, 256)).toBe(256);
  });

  it('never more cells than blocks or pixels, at least one, and cells near square', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3_000_000 }), (blocks) => {
        const g = fillLayout(blocks, 1024, 256);
        expect(g.cols * g.rows).toBeLessThanOrEqual(Math.min(blocks, 1024 * 256));
        expect(g.cols).toBeGreaterThanOrEqual(1);
        expect(g.rows).toBeGreaterThanOrEqual(1);
        // cells use at least half of the blocks' cells (no tiny grid for many blocks)
        expect(g.cols * g.rows * 2).toBeGreaterThanOrEqual(Math.min(blocks, 1024 * 256));
      }),
    );
  });
});

describe('change counting and predicted size', () => {
  it('counts blocks with a change number greater than N', () => {
    const map = Uint8Array.from([0, 1, 2, 3, 3, 0, 1]);
    expect(countChangedSince(map, 0)).toBe(5);
    expect(countChangedSince(map, 1)).toBe(3);
    expect(countChangedSince(map, 3)).toBe(0);
  });

  it('predicts changed blocks x block size, at most the device size (as the backup counts)', () => {
    const map = Uint8Array.from([2, 0, 2, 1]);
    expect(predictedIncrementBytes(map, 1, 4096, 4 * 4096)).toBe(2 * 4096);
    // capacity ends 1024 bytes into the last block: a changed last block still counts whole
    const tail = Uint8Array.from([0, 0, 5]);
    expect(predictedIncrementBytes(tail, 0, 4096, 2 * 4096 + 1024)).toBe(4096);
    // every block changed: the device size, not the blocks' rounded-up size
    expect(predictedIncrementBytes(Uint8Array.from([1, 1, 1]), 0, 4096, 2 * 4096 + 1024)).toBe(2 * 4096 + 1024);
    expect(predictedIncrementBytes(new Uint8Array(0), 0, 4096, 0)).toBe(0);
  });

  it('counts and predicts within a selected block range', () => {
    const map = Uint8Array.from([3, 3, 0, 3, 1, 3]);
    expect(countChangedSince(map, 2, 1, 4)).toBe(2);
    expect(predictedIncrementBytes(map, 2, 512, 6 * 512, 1, 4)).toBe(2 * 512);
    expect(predictedIncrementBytes(map, 0, 512, 6 * 512, 2, 3)).toBe(0);
  });
});

describe('cells under the pointer', () => {
  it('maps pixels to cells and cells to block and byte ranges', () => {
    const map = new Uint8Array(100);
    map[42] = 7;
    const agg = aggregateMax(map, 10, 100, 30); // 90 blocks, 3 per cell, 30 cells
    const layout = { cols: 10, rows: 3 }; // 10 x 5 pixels per cell on 100 x 15
    expect(cellAt(0, 0, layout, 100, 15)).toBe(0);
    expect(cellAt(99, 14, layout, 100, 15)).toBe(29);
    expect(cellAt(25, 6, layout, 100, 15)).toBe(12);
    expect(cellAt(-1, 0, layout, 100, 15)).toBeNull();
    expect(cellAt(100, 0, layout, 100, 15)).toBeNull();
    expect(cellAt(0, 15, layout, 100, 15)).toBeNull();
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
