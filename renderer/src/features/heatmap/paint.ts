/** Drawing of aggregated cells into an RGBA pixel buffer (pure; the canvas puts it). */
import type { GridLayout } from './aggregate.js';

/**
 * Fills `pixels` (a Uint32Array view of ImageData, width x height) with the cells laid
 * out row by row, each cellPx x cellPx, coloured through `palette`; the rest is
 * `background`. One pass over the cells.
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
  const { cellPx, cols } = layout;
  if (cellPx === 1) {
    // Row-major cells map one-to-one onto pixels when cols === width.
    for (let c = 0; c < cellCount; c++) {
      const x = c % cols;
      const y = (c - x) / cols;
      if (y >= height) break;
      pixels[y * width + x] = palette[cells[c] as number] as number;
    }
    return;
  }
  for (let c = 0; c < cellCount; c++) {
    const col = c % cols;
    const row = (c - col) / cols;
    const x0 = col * cellPx;
    const y0 = row * cellPx;
    if (y0 >= height) break;
    const color = palette[cells[c] as number] as number;
    // Leave a 1-pixel gap between cells when they are large enough to read as a grid.
    const side = cellPx >= 6 ? cellPx - 1 : cellPx;
    const yEnd = Math.min(height, y0 + side);
    const xEnd = Math.min(width, x0 + side);
    for (let y = y0; y < yEnd; y++) pixels.fill(color, y * width + x0, y * width + xEnd);
  }
}
