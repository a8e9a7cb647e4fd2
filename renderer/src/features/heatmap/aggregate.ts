/**
 * CBT heatmap arithmetic (pure, typed arrays, single passes): aggregation of tracking
 * blocks into cells, the grid layout, the "changed since N" count and the predicted
 * incremental size, and cell <-> block ranges for the tooltip.
 *
 * The CBT map holds one byte per tracking block: the change number the block was last
 * written in (0: not written since tracking began). Blocks changed since snapshot N
 * are those with a value greater than N.
 */

export interface Aggregation {
  /** One value per cell: the maximum change number of the cell's blocks. */
  cells: Uint8Array;
  /** Number of cells in use (cells.length may be larger when a buffer is reused). */
  cellCount: number;
  /** Most blocks in one cell (cells hold this many or one fewer). */
  blocksPerCell: number;
  /** First block of the view. */
  start: number;
  /** One past the last block of the view. */
  end: number;
}

/** First block of cell `i` of `cellCount` cells over blocks [start, end): cells split the blocks evenly. */
export function cellFirstBlock(i: number, cellCount: number, start: number, end: number): number {
  return start + Math.floor((i * (end - start)) / Math.max(1, cellCount));
}

/**
 * Aggregates blocks [start, end) of `map` into `cellCount` cells (at most one per
 * block), each the maximum change number of its blocks, so one changed block is never
 * hidden. Cell i holds blocks [cellFirstBlock(i), cellFirstBlock(i + 1)): the cells
 * split the blocks evenly, so offsets grow linearly along the map. `out` is reused
 * when large enough.
 */
export function aggregateMax(map: Uint8Array, start: number, end: number, cellCount: number, out?: Uint8Array): Aggregation {
  const from = Math.max(0, Math.min(map.length, Math.floor(start)));
  const to = Math.max(from, Math.min(map.length, Math.floor(end)));
  const blocks = to - from;
  const count = Math.max(0, Math.min(blocks, Math.floor(cellCount)));
  const cells = out !== undefined && out.length >= count ? out : new Uint8Array(count);
  const blocksPerCell = count === 0 ? 1 : Math.ceil(blocks / count);
  if (count === blocks) {
    cells.set(map.subarray(from, to));
  } else {
    let b = from;
    for (let c = 0; c < count; c++) {
      const stop = cellFirstBlock(c + 1, count, from, to);
      let max = 0;
      for (; b < stop; b++) {
        const v = map[b] as number;
        if (v > max) max = v;
      }
      cells[c] = max;
    }
  }
  return { cells, cellCount: count, blocksPerCell, start: from, end: to };
}

export interface GridLayout {
  cols: number;
  rows: number;
}

/**
 * The grid that fills a width x height canvas (no blank strip at any zoom): rows x cols
 * cells, at most one per block and one per pixel. Among the row counts near the one
 * that gives square cells, the grid with the most cells whose cells are at most twice
 * as wide as high (or high as wide) wins, the squarer on a tie: 1024 blocks on
 * 1024 x 256 give 64 x 16 cells of 16 px, 1000 blocks 50 x 20 (one block each).
 * Cell (row, col) spans pixels [col * width / cols, (col + 1) * width / cols) and
 * likewise down.
 */
export function fillLayout(blocks: number, width: number, height: number): GridLayout {
  const n = Math.max(1, Math.min(Math.floor(blocks), width * height));
  if (n === width * height) return { cols: width, rows: height };
  const ideal = Math.sqrt((n * height) / width);
  let best: GridLayout | null = null;
  let bestSkew = Infinity;
  for (let rows = Math.max(1, Math.floor(ideal / 1.5)); rows <= Math.min(height, Math.ceil(ideal * 1.5)); rows++) {
    const cols = Math.min(width, Math.floor(n / rows));
    if (cols < 1) continue;
    const skew = Math.abs(Math.log(width / cols / (height / rows)));
    if (skew > Math.log(2) + 1e-9) continue;
    const more = best === null || rows * cols > best.rows * best.cols;
    if (more || (best !== null && rows * cols === best.rows * best.cols && skew < bestSkew)) {
      best = { cols, rows };
      bestSkew = skew;
    }
  }
  if (best !== null) return best;
  const rows = Math.max(1, Math.min(height, Math.round(ideal)));
  return { cols: Math.max(1, Math.min(width, Math.floor(n / rows))), rows };
}

/** Pixel edge of column (or row) `i` of `count` across `size` pixels. */
export function cellEdge(i: number, count: number, size: number): number {
  return Math.floor((i * size) / count);
}

/** Number of blocks whose change number is greater than n (blocks [from, to) when given). */
export function countChangedSince(map: Uint8Array, n: number, from = 0, to = map.length): number {
  let count = 0;
  const end = Math.min(map.length, to);
  for (let i = Math.max(0, from); i < end; i++) if ((map[i] as number) > n) count++;
  return count;
}

/**
 * Predicted size of an incremental backup since snapshot n, as the backup layer counts
 * it (engine/backup changedBytes): changed tracking blocks x block size, at most the
 * device size. Blocks [from, to) only, when given (a selected range: at most its bytes).
 */
export function predictedIncrementBytes(map: Uint8Array, n: number, blockSize: number, capacityBytes: number, from = 0, to = map.length): number {
  const changed = countChangedSince(map, n, from, to);
  const end = Math.min(map.length, to);
  const rangeBytes = Math.min(capacityBytes, end * blockSize) - Math.max(0, from) * blockSize;
  return Math.max(0, Math.min(changed * blockSize, rangeBytes));
}

export interface CellDetail {
  /** First block of the cell. */
  firstBlock: number;
  /** Last block of the cell (inclusive). */
  lastBlock: number;
  /** Byte range [firstByte, endByte). */
  firstByte: number;
  endByte: number;
  /** The cell's (maximum) change number. */
  changeNumber: number;
}

/** The cell under canvas pixel (x, y) of a width x height canvas, or null outside it. */
export function cellAt(x: number, y: number, layout: GridLayout, width: number, height: number): number | null {
  if (x < 0 || y < 0 || x >= width || y >= height) return null;
  const col = Math.min(layout.cols - 1, Math.floor((x * layout.cols) / width));
  const row = Math.min(layout.rows - 1, Math.floor((y * layout.rows) / height));
  return row * layout.cols + col;
}

export function cellDetail(agg: Aggregation, cell: number, blockSize: number, capacityBytes: number): CellDetail {
  const firstBlock = cellFirstBlock(cell, agg.cellCount, agg.start, agg.end);
  const lastBlock = Math.max(firstBlock, cellFirstBlock(cell + 1, agg.cellCount, agg.start, agg.end) - 1);
  return {
    firstBlock,
    lastBlock,
    firstByte: firstBlock * blockSize,
    endByte: Math.min(capacityBytes, (lastBlock + 1) * blockSize),
    changeNumber: agg.cells[cell] ?? 0,
  };
}

/** The block window for a zoom factor: [start, end) of ceil(blockCount / zoom) blocks starting near `start`. */
export function viewWindow(blockCount: number, zoom: number, start: number): { start: number; end: number } {
  const visible = Math.max(1, Math.ceil(blockCount / Math.max(1, zoom)));
  const s = Math.max(0, Math.min(Math.floor(start), blockCount - visible));
  return { start: s, end: Math.min(blockCount, s + visible) };
}
