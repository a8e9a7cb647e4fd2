import { useEffect, useMemo, useRef, useState } from 'react';
import type { KeyboardEvent, MouseEvent } from 'react';
import { formatBytes } from '../../../../app/shared/format.js';
import type { CbtInfoEntry, PartitionInfo } from '../../../../app/shared/types.js';
import { aggregateMax, cellAt, cellDetail, cellFirstBlock, countChangedSince, fillLayout, predictedIncrementBytes } from './aggregate.js';
import type { CellDetail } from './aggregate.js';
import { boundaryPath, rangeRects, rulerTicks } from './overlay.js';
import type { MapView } from './overlay.js';
import { backgroundColor, buildPalette, packRgb } from './palette.js';
import { paintCells } from './paint.js';

import { CANVAS_HEIGHT, CANVAS_WIDTH } from './canvas-size.js';

export { CANVAS_HEIGHT, CANVAS_WIDTH };

interface Props {
  info: CbtInfoEntry;
  map: Uint8Array;
  start: number;
  end: number;
  /** The newest change number the table can hold (top of the colour ramp). */
  newest: number;
  sinceN: number | null;
  /** The N of "changed since N" for a selected range (the N of the predicted size). */
  countSince: number;
  /** Partitions of the device, drawn as boundaries. */
  partitions: PartitionInfo[];
  dark: boolean;
  onKey(e: KeyboardEvent<HTMLCanvasElement>): void;
}

/** The pointer over the canvas: CSS pixels (for the tooltip) and canvas pixels (for the cell). */
interface Hover {
  x: number;
  y: number;
  /** The canvas's CSS width (the tooltip opens leftwards in its right third). */
  width: number;
  canvasX: number;
  canvasY: number;
}

/** A selected block range [from, to) and the cell a drag started from. */
interface Selection {
  from: number;
  to: number;
}

/**
 * The heatmap proper: aggregation + one ImageData put per change, a byte-offset ruler
 * and partition boundaries over it; a tooltip on hover; a drag selects a range and
 * shows its changed bytes.
 */
export function HeatmapCanvas({ info, map, start, end, newest, sinceN, countSince, partitions, dark, onKey }: Props) {
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const buffer = useRef<Uint8Array | undefined>(undefined);
  const [hover, setHover] = useState<Hover | null>(null);
  const [selection, setSelection] = useState<Selection | null>(null);
  const [dragFrom, setDragFrom] = useState<number | null>(null);
  /** Keyboard selection (Shift + arrow keys): the cell it started from and the cell it reaches. */
  const [keyCells, setKeyCells] = useState<{ anchor: number; focus: number } | null>(null);

  const layout = useMemo(() => fillLayout(Math.max(0, Math.min(map.length, end) - start), CANVAS_WIDTH, CANVAS_HEIGHT), [map.length, start, end]);
  const agg = useMemo(() => {
    const result = aggregateMax(map, start, end, layout.cols * layout.rows, buffer.current);
    buffer.current = result.cells;
    return result;
  }, [map, start, end, layout]);
  const view: MapView = { start: agg.start, end: agg.end, blockSize: info.blockSize, capacityBytes: info.capacityBytes, cellCount: agg.cellCount };
  const palette = useMemo(
    () => buildPalette({ changesNumber: newest, sinceN, dark }),
    [newest, sinceN, dark],
  );

  useEffect(() => {
    const canvas = canvasRef.current;
    const ctx = canvas?.getContext('2d') ?? null;
    if (ctx === null) return;
    const image = ctx.createImageData(CANVAS_WIDTH, CANVAS_HEIGHT);
    const pixels = new Uint32Array(image.data.buffer);
    paintCells(pixels, CANVAS_WIDTH, CANVAS_HEIGHT, agg.cells, agg.cellCount, layout, palette, packRgb(backgroundColor(dark)));
    ctx.putImageData(image, 0, 0);
  }, [agg, layout, palette, dark]);

  function pointer(e: MouseEvent<HTMLCanvasElement>): Hover | null {
    const rect = e.currentTarget.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) return null;
    return {
      x: e.clientX - rect.left,
      y: e.clientY - rect.top,
      width: rect.width,
      canvasX: ((e.clientX - rect.left) * CANVAS_WIDTH) / rect.width,
      canvasY: ((e.clientY - rect.top) * CANVAS_HEIGHT) / rect.height,
    };
  }

  /** Blocks [from, to) of the cells between two cells, either order. */
  function rangeOf(a: number, b: number): Selection {
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    return { from: cellFirstBlock(lo, agg.cellCount, agg.start, agg.end), to: cellFirstBlock(hi + 1, agg.cellCount, agg.start, agg.end) };
  }

  function cellOf(h: Hover): number | null {
    return cellAt(h.canvasX, h.canvasY, layout, CANVAS_WIDTH, CANVAS_HEIGHT);
  }

  function onMove(e: MouseEvent<HTMLCanvasElement>) {
    const h = pointer(e);
    if (h === null) return;
    setHover(h);
    const cell = cellOf(h);
    if (dragFrom !== null && cell !== null && (e.buttons & 1) === 1) setSelection(rangeOf(dragFrom, cell));
  }

  function onDown(e: MouseEvent<HTMLCanvasElement>) {
    if (e.button !== 0) return;
    const h = pointer(e);
    const cell = h === null ? null : cellOf(h);
    if (cell === null) return;
    setDragFrom(cell);
    setKeyCells(null);
    setSelection(rangeOf(cell, cell));
  }

  /** Shift + arrow keys: extend the selection by a cell (left, right) or a row (up, down). */
  function onSelectKey(e: KeyboardEvent<HTMLCanvasElement>): boolean {
    const steps: Record<string, number> = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: layout.cols, ArrowUp: -layout.cols };
    const step = steps[e.key];
    if (!e.shiftKey || step === undefined || agg.cellCount === 0) return false;
    // the first press selects the first cell (right, down) or the last (left, up)
    const edge = step > 0 ? 0 : agg.cellCount - 1;
    const current = keyCells ?? { anchor: edge, focus: edge };
    const focus = keyCells === null ? current.focus : Math.max(0, Math.min(agg.cellCount - 1, current.focus + step));
    setKeyCells({ anchor: current.anchor, focus });
    setSelection(rangeOf(current.anchor, focus));
    return true;
  }

  // The cell under the pointer in the cells drawn now: a new map (polling) or a zoom
  // made with the keyboard changes what is under a pointer that does not move.
  const hoverCell = hover === null ? null : cellOf(hover);
  const detail: CellDetail | null = hoverCell === null ? null : cellDetail(agg, hoverCell, info.blockSize, info.capacityBytes);
  const ticks = rulerTicks(view, CANVAS_HEIGHT);
  const boundaries = partitions.flatMap((p) => [
    { key: `${p.number}-start`, d: boundaryPath(p.startBytes, view, layout, CANVAS_WIDTH, CANVAS_HEIGHT), label: p.name, at: p.startBytes },
    { key: `${p.number}-end`, d: boundaryPath(p.startBytes + p.sizeBytes, view, layout, CANVAS_WIDTH, CANVAS_HEIGHT), label: null, at: p.startBytes + p.sizeBytes },
  ]);
  const selectionRects = selection === null ? [] : rangeRects(selection.from, selection.to, view, layout, CANVAS_WIDTH, CANVAS_HEIGHT);
  const selFirstByte = selection === null ? 0 : selection.from * info.blockSize;
  const selEndByte = selection === null ? 0 : Math.min(info.capacityBytes, selection.to * info.blockSize);
  const selBlocks = selection === null ? 0 : countChangedSince(map, countSince, selection.from, selection.to);
  const selChanged = selection === null ? 0 : predictedIncrementBytes(map, countSince, info.blockSize, info.capacityBytes, selection.from, selection.to);

  const aggregated = agg.blocksPerCell > 1;
  return (
    <div className="heatmap">
      <div className="heatmap-frame">
        <div className="heatmap-ruler" data-testid="heatmap-ruler" aria-hidden="true">
          {ticks.map((t) => (
            <span key={t.byte} className="heatmap-tick" data-byte={t.byte} style={{ top: `${(t.y / CANVAS_HEIGHT) * 100}%` }}>
              {t.label}
            </span>
          ))}
        </div>
        <div className="heatmap-wrap">
          <canvas
            ref={canvasRef}
            width={CANVAS_WIDTH}
            height={CANVAS_HEIGHT}
            className="heatmap-canvas"
            data-testid="heatmap-canvas"
            data-cell-count={agg.cellCount}
            data-cols={layout.cols}
            data-rows={layout.rows}
            data-blocks-per-cell={agg.blocksPerCell}
            tabIndex={0}
            role="img"
            aria-label={`CBT heatmap of ${info.device}: blocks ${agg.start} to ${agg.end - 1}, up to ${agg.blocksPerCell} block${aggregated ? 's' : ''} per cell, rows of offsets from the top left. Plus and minus zoom, arrow keys move, drag or Shift and arrow keys select a range, Escape clears it.`}
            onMouseMove={onMove}
            onMouseDown={onDown}
            onMouseUp={() => setDragFrom(null)}
            onMouseLeave={() => {
              setHover(null);
              setDragFrom(null);
            }}
            onKeyDown={(e) => {
              if (e.key === 'Escape' && selection !== null) {
                setSelection(null);
                setKeyCells(null);
                e.preventDefault();
                return;
              }
              if (onSelectKey(e)) {
                e.preventDefault();
                return;
              }
              onKey(e);
            }}
          />
          <svg className="heatmap-overlay" viewBox={`0 0 ${CANVAS_WIDTH} ${CANVAS_HEIGHT}`} preserveAspectRatio="none" aria-hidden="true" data-testid="heatmap-overlay">
            {selectionRects.map((r, i) => (
              <rect key={i} className="heatmap-selection" data-testid="heatmap-selection-rect" x={r.x} y={r.y} width={r.width} height={r.height} />
            ))}
            {boundaries.map((b) =>
              b.d === null ? null : (
                <path key={b.key} className="heatmap-partition" data-testid="heatmap-partition-line" data-byte={b.at} d={b.d} vectorEffect="non-scaling-stroke" />
              ),
            )}
          </svg>
          {hover !== null && detail !== null ? (
            <div className="tooltip" role="tooltip" data-testid="heatmap-tooltip" style={hover.x > (hover.width * 2) / 3 ? { right: hover.width - hover.x + 12, top: hover.y + 12 } : { left: hover.x + 12, top: hover.y + 12 }}>
              <div>
                {detail.firstBlock === detail.lastBlock ? `Block ${detail.firstBlock}` : `Blocks ${detail.firstBlock}–${detail.lastBlock}`}
              </div>
              <div>
                Bytes {detail.firstByte}–{detail.endByte - 1} ({formatBytes(detail.endByte - detail.firstByte)})
              </div>
              <div>
                {aggregated ? 'Highest change number' : 'Change number'}: {detail.changeNumber}
                {detail.changeNumber === 0 ? ' (not written)' : ''}
              </div>
            </div>
          ) : null}
        </div>
      </div>
      <p className="muted small-text">
        Offsets on the left; each row continues the one above ({formatBytes(((agg.end - agg.start) * info.blockSize) / layout.rows)} per row).
        {partitions.length > 0 ? ' Lines mark partition boundaries.' : ''} Drag across the map (or Shift + arrow keys) to select a range.
      </p>
      {partitions.length > 0 ? (
        <p className="small-text" data-testid="heatmap-partitions">
          Partitions:{' '}
          {partitions.map((p) => `${p.name} ${formatBytes(p.startBytes)}–${formatBytes(p.startBytes + p.sizeBytes)}`).join(', ')}
        </p>
      ) : null}
      {selection !== null ? (
        <p data-testid="heatmap-selection" aria-live="polite">
          Selected bytes {formatBytes(selFirstByte)}–{formatBytes(selEndByte)} ({formatBytes(selEndByte - selFirstByte)}):{' '}
          <output data-testid="heatmap-selection-changed" data-bytes={selChanged}>
            {formatBytes(selChanged)}
          </output>{' '}
          changed since snapshot {countSince}{' '}
          <span className="muted">({selBlocks.toLocaleString('en-US')} changed blocks × {formatBytes(info.blockSize)})</span>{' '}
          <button
            type="button"
            className="link"
            onClick={() => {
              setSelection(null);
              setKeyCells(null);
            }}
          >
            Clear selection
          </button>
        </p>
      ) : null}
    </div>
  );
}
