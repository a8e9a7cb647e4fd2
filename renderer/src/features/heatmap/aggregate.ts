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
  /** Blocks per cell (the last cell may hold fewer). */
  blocksPerCell: number;
  /** First block of the view. */
  start: number;
  /** One past the last block of the view. */
  end: number;
}

/**
 * Aggregates blocks [start, end) of `map` into at most `maxCells` cells, each the
 * maximum change number of its blocks (so one changed block is never hidden).
 * `out` is reused when large enough.
 */
export function aggregateMax(map: Uint8Array, start: number, end: number, maxCells: number, out?: Uint8Array): Aggregation {
  const from = Math.max(0, Math.min(map.length, Math.floor(start)));
  const to = Math.max(from, Math.min(map.length, Math.floor(end)));
  const blocks = to - from;
  const limit = Math.max(1, Math.floor(maxCells));
  const blocksPerCell = Math.max(1, Math.ceil(blocks / limit));
  const cellCount = Math.ceil(blocks / blocksPerCell);
  const cells = out !== undefined && out.length >= cellCount ? out : new Uint8Array(cellCount);
  if (blocksPerCell === 1) {
    cells.set(map.subarray(from, to));
  } else {
    let b = from;
    for (let c = 0; c < cellCount; c++) {
      const stop = Math.min(to, b + blocksPerCell);
      let max = 0;
      for (; b < stop; b++) {
        const v = map[b] as number;
        if (v > max) max = v;
      }
      cells[c] = max;
    }
  }
  return { cells, cellCount, blocksPerCell, start: from, end: to };
}

export interface GridLayout {
  /** Side of one cell in pixels. */
  cellPx: number;
  cols: number;
  rows: number;
}

/**
 * The largest square cell (1..maxCellPx pixels) for which `cellCount` cells fit in a
 * width x height canvas, row by row. With cellCount > width * height nothing fits:
 * callers aggregate to at most width * height cells first.
 */
export function gridLayout(cellCount: number, width: number, height: number, maxCellPx = 32): GridLayout {
  const count = Math.max(1, cellCount);
  let px = Math.max(1, Math.min(maxCellPx, Math.floor(Math.sqrt((width * height) / count))));
  for (; px > 1; px--) {
    const cols = Math.floor(width / px);
    if (cols > 0 && Math.ceil(count / cols) * px <= height) break;
  }
  const cols = Math.max(1, Math.floor(width / px));
  return { cellPx: px, cols, rows: Math.ceil(count / cols) };
}

/** Number of blocks whose change number is greater than n. */
export function countChangedSince(map: Uint8Array, n: number): number {
  let count = 0;
  for (let i = 0; i < map.length; i++) if ((map[i] as number) > n) count++;
  return count;
}

/**
 * Predicted size of an incremental backup since snapshot n: changed blocks x block
 * size, the last block counted only up to the device capacity.
 */
export function predictedIncrementBytes(map: Uint8Array, n: number, blockSize: number, capacityBytes: number): number {
  const changed = countChangedSince(map, n);
  let bytes = changed * blockSize;
  const last = map.length - 1;
  if (last >= 0 && (map[last] as number) > n) {
    const tail = map.length * blockSize - capacityBytes;
    if (tail > 0 && tail < blockSize) bytes -= tail;
  }
  return bytes;
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

/** The cell under canvas pixel (x, y), or null outside the cells. */
export function cellAt(x: number, y: number, layout: GridLayout, cellCount: number): number | null {
  if (x < 0 || y < 0) return null;
  const col = Math.floor(x / layout.cellPx);
  const row = Math.floor(y / layout.cellPx);
  if (col >= layout.cols) return null;
  const cell = row * layout.cols + col;
  return cell < cellCount ? cell : null;
}

export function cellDetail(agg: Aggregation, cell: number, blockSize: number, capacityBytes: number): CellDetail {
  const firstBlock = agg.start + cell * agg.blocksPerCell;
  const lastBlock = Math.min(agg.end, firstBlock + agg.blocksPerCell) - 1;
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
