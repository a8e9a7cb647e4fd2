import { describe, expect, it } from 'vitest';
import { boundaryPath, cellPosition, rangeRects, rulerTicks } from '../../../../renderer/src/features/heatmap/overlay.js';
import type { MapView } from '../../../../renderer/src/features/heatmap/overlay.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A 4 GiB device of 64 KiB blocks (65536) shown whole as 256 x 256 cells of one block on 1024 x 256 pixels. */
const whole: MapView = { start: 0, end: 65536, blockSize: 64 * 1024, capacityBytes: 4 * GiB, cellCount: 256 * 256 };
const layout = { cols: 256, rows: 256 };

describe('rulerTicks', () => {
  it('round binary offsets from 0, at most 6, at the height where the offset lies', () => {
    const ticks = rulerTicks(whole, 256);
    expect(ticks.map((t) => t.label)).toEqual(['0 B', '1 GiB', '2 GiB', '3 GiB']);
    expect(ticks.map((t) => t.y)).toEqual([0, 64, 128, 192]);
  });

  it('a 2 GiB device gives 512 MiB steps', () => {
    const v = { ...whole, end: 32768, capacityBytes: 2 * GiB };
    expect(rulerTicks(v, 256).map((t) => t.label)).toEqual(['0 B', '512 MiB', '1 GiB', '1.5 GiB']);
  });

  it('a zoomed view starts at the first round offset inside it', () => {
    // blocks 10000..12000 of 64 KiB: bytes 625 MiB .. 750 MiB
    const v = { ...whole, start: 10000, end: 12000, cellCount: 2000 };
    const ticks = rulerTicks(v, 200);
    expect(ticks[0]?.byte).toBeGreaterThanOrEqual(10000 * 64 * 1024);
    expect(ticks.map((t) => t.label)).toEqual(['640 MiB', '672 MiB', '704 MiB', '736 MiB']);
    // 640 MiB is block 10240: 240 of 2000 blocks down a 200-pixel map
    expect(ticks[0]?.y).toBeCloseTo(24);
  });

  it('nothing for an empty view', () => {
    expect(rulerTicks({ ...whole, end: 0, cellCount: 0 }, 256)).toEqual([]);
  });
});

describe('boundaryPath', () => {
  it('a boundary at the start of a row is a line across the map', () => {
    // 1 GiB is cell 16384 = row 64, column 0
    expect(cellPosition(GiB, whole)).toBe(16384);
    expect(boundaryPath(GiB, whole, layout, 1024, 256)).toBe('M0 64 H1024');
  });

  it('a boundary inside a row steps down the row: top right to the offset, down, bottom back to the left', () => {
    const byte = 64 * 256 * 64 * 1024 + 128 * 64 * 1024; // row 64, column 128
    expect(boundaryPath(byte, whole, layout, 1024, 256)).toBe('M1024 64 H512 V65 H0');
  });

  it('no line at the very start or end, or off view', () => {
    expect(boundaryPath(0, whole, layout, 1024, 256)).toBeNull();
    expect(boundaryPath(4 * GiB, whole, layout, 1024, 256)).toBeNull();
    const v = { ...whole, start: 100, end: 200, cellCount: 100 };
    expect(boundaryPath(50 * 64 * 1024, v, { cols: 10, rows: 10 }, 1024, 256)).toBeNull();
  });
});

describe('rangeRects', () => {
  const v: MapView = { start: 0, end: 100, blockSize: 512, capacityBytes: 100 * 512, cellCount: 100 };
  const grid = { cols: 10, rows: 10 };

  it('a range within one row is one rectangle', () => {
    expect(rangeRects(12, 15, v, grid, 100, 100)).toEqual([{ x: 20, y: 10, width: 30, height: 10 }]);
  });

  it('a range over rows: the end of its first row, the whole rows between, the start of its last row', () => {
    expect(rangeRects(15, 42, v, grid, 100, 100)).toEqual([
      { x: 50, y: 10, width: 50, height: 10 },
      { x: 0, y: 20, width: 100, height: 20 },
      { x: 0, y: 40, width: 20, height: 10 },
    ]);
  });

  it('a range that ends at a row end does not spill into the next row', () => {
    expect(rangeRects(10, 20, v, grid, 100, 100)).toEqual([{ x: 0, y: 10, width: 100, height: 10 }]);
  });

  it('an empty range draws nothing', () => {
    expect(rangeRects(30, 30, v, grid, 100, 100)).toEqual([]);
  });
});
