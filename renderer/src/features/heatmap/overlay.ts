/**
 * What is drawn over the heatmap (pure): the byte-offset ruler, partition boundaries
 * and a selected range, in canvas pixels. Cells split the view's blocks evenly
 * (aggregate.ts), so a byte offset maps linearly to a fractional cell position, and
 * row by row down the canvas.
 */
import { formatBytes } from '../../../../app/shared/format.js';
import type { GridLayout } from './aggregate.js';

/** The blocks on view and how big they are. */
export interface MapView {
  /** First block shown, one past the last. */
  start: number;
  end: number;
  blockSize: number;
  capacityBytes: number;
  /** Cells drawn (rows x cols of the layout). */
  cellCount: number;
}

export interface Tick {
  byte: number;
  label: string;
  /** Vertical position, canvas pixels: the row holding this offset begins with it or holds it. */
  y: number;
}

/** First and one-past-last byte on view. */
export function viewBytes(v: MapView): { first: number; end: number } {
  return { first: v.start * v.blockSize, end: Math.min(v.capacityBytes, v.end * v.blockSize) };
}

/** Fractional cell position of a byte offset (0 at the first cell, cellCount at the end). */
export function cellPosition(byte: number, v: MapView): number {
  const blocks = v.end - v.start;
  if (blocks <= 0) return 0;
  const block = Math.min(v.end, Math.max(v.start, byte / v.blockSize));
  return ((block - v.start) * v.cellCount) / blocks;
}

/**
 * Ruler ticks at round offsets (a power-of-two step: 0, 512 MiB, 1 GiB, 1.5 GiB, ...),
 * at most `maxTicks`, each at the height where its offset lies.
 */
export function rulerTicks(v: MapView, height: number, maxTicks = 6): Tick[] {
  const { first, end } = viewBytes(v);
  const span = end - first;
  if (span <= 0 || v.cellCount === 0) return [];
  let step = 512;
  while (span / step > maxTicks - 1) step *= 2;
  const ticks: Tick[] = [];
  for (let byte = Math.ceil(first / step) * step; byte < end; byte += step) {
    ticks.push({ byte, label: formatBytes(byte), y: ((byte / v.blockSize - v.start) / (v.end - v.start)) * height });
  }
  return ticks;
}

/** The point where a cell position lies: its row's top and bottom, and x within the row. */
function pointOf(p: number, layout: GridLayout, width: number, height: number): { x: number; top: number; bottom: number } {
  const { cols, rows } = layout;
  const row = Math.min(rows - 1, Math.floor(p / cols));
  const x = ((p - row * cols) * width) / cols;
  return { x, top: (row * height) / rows, bottom: ((row + 1) * height) / rows };
}

/**
 * SVG path of the line between what lies before and after a byte offset, row by row:
 * along the top of its row from the right edge to the offset, down the row, and along
 * the bottom back to the left edge. null when the offset is off view.
 */
export function boundaryPath(byte: number, v: MapView, layout: GridLayout, width: number, height: number): string | null {
  const { first, end } = viewBytes(v);
  if (byte <= first || byte >= end) return null;
  const p = cellPosition(byte, v);
  const { x, top, bottom } = pointOf(p, layout, width, height);
  const r = (n: number): string => String(Math.round(n * 100) / 100);
  if (x <= 0.01) return `M0 ${r(top)} H${width}`;
  return `M${width} ${r(top)} H${r(x)} V${r(bottom)} H0`;
}

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Rectangles covering blocks [fromBlock, toBlock) on view: part of a first row, whole rows, part of a last row. */
export function rangeRects(fromBlock: number, toBlock: number, v: MapView, layout: GridLayout, width: number, height: number): Rect[] {
  const a = cellPosition(fromBlock * v.blockSize, v);
  const b = cellPosition(toBlock * v.blockSize, v);
  if (b <= a) return [];
  const { cols, rows } = layout;
  const rowH = height / rows;
  const cellW = width / cols;
  const rowA = Math.floor(a / cols);
  const rowB = Math.min(rows - 1, Math.floor((b - 1e-9) / cols));
  const xa = (a - rowA * cols) * cellW;
  const xb = (b - rowB * cols) * cellW;
  if (rowA === rowB) return [{ x: xa, y: rowA * rowH, width: xb - xa, height: rowH }];
  const out: Rect[] = [{ x: xa, y: rowA * rowH, width: width - xa, height: rowH }];
  if (rowB > rowA + 1) out.push({ x: 0, y: (rowA + 1) * rowH, width, height: (rowB - rowA - 1) * rowH });
  out.push({ x: 0, y: rowB * rowH, width: xb, height: rowH });
  return out;
}
