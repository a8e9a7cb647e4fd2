/** Drawing of aggregated cells into an RGBA pixel buffer (pure; the canvas puts it). */
import { cellEdge } from './aggregate.js';
import type { GridLayout } from './aggregate.js';

/**
 * Fills `pixels` (a Uint32Array view of ImageData, width x height) with the cells laid
 * out row by row over the whole canvas (cellEdge), coloured through `palette`; pixels
 * of cells past `cellCount` (none when the layout came from fillLayout) are
 * `background`. Cells at least 6 pixels wide and high keep a 1-pixel gap so they read
 * as a grid. One pass over the pixels.
 */
export function paintCells(
  pixels: Uint32Array,
  width: number,
  height: number,
  cells: Uint8Array,
  cellCount: number,
  layout: GridLayout,
  palette: Uint32Array,
  background: number,
): void {
  pixels.fill(background);
  const { cols, rows } = layout;
  if (cols === width && rows === height) {
    for (let c = 0; c < Math.min(cellCount, width * height); c++) pixels[c] = palette[cells[c] as number] as number;
    return;
  }
  const gapX = width / cols >= 6 ? 1 : 0;
  const gapY = height / rows >= 6 ? 1 : 0;
  for (let row = 0; row < rows; row++) {
    const y0 = cellEdge(row, rows, height);
    const y1 = cellEdge(row + 1, rows, height) - gapY;
    for (let col = 0; col < cols; col++) {
      const c = row * cols + col;
      if (c >= cellCount) return;
      const color = palette[cells[c] as number] as number;
      const x0 = cellEdge(col, cols, width);
      const x1 = cellEdge(col + 1, cols, width) - gapX;
      for (let y = y0; y < y1; y++) pixels.fill(color, y * width + x0, y * width + x1);
    }
  }
}
