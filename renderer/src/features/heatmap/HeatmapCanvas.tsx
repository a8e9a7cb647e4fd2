import { useEffect, useMemo, useRef, useState } from 'react';
import type { KeyboardEvent, MouseEvent } from 'react';
import { formatBytes } from '../../../../app/shared/format.js';
import type { CbtInfoEntry } from '../../../../app/shared/types.js';
import { aggregateMax, cellAt, cellDetail, gridLayout } from './aggregate.js';
import type { CellDetail } from './aggregate.js';
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
  dark: boolean;
  onKey(e: KeyboardEvent<HTMLCanvasElement>): void;
}

/** The pointer over the canvas: CSS pixels (for the tooltip) and canvas pixels (for the cell). */
interface Hover {
  x: number;
  y: number;
  canvasX: number;
  canvasY: number;
}

/** The heatmap proper: aggregation + one ImageData put per change; a tooltip on hover. */
export function HeatmapCanvas({ info, map, start, end, newest, sinceN, dark, onKey }: Props) {
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const buffer = useRef<Uint8Array | undefined>(undefined);
  const [hover, setHover] = useState<Hover | null>(null);

  const agg = useMemo(() => {
    const result = aggregateMax(map, start, end, CANVAS_WIDTH * CANVAS_HEIGHT, buffer.current);
    buffer.current = result.cells;
    return result;
  }, [map, start, end]);
  const layout = useMemo(() => gridLayout(agg.cellCount, CANVAS_WIDTH, CANVAS_HEIGHT), [agg]);
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

  function onMove(e: MouseEvent<HTMLCanvasElement>) {
    const rect = e.currentTarget.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) return;
    setHover({
      x: e.clientX - rect.left,
      y: e.clientY - rect.top,
      canvasX: ((e.clientX - rect.left) * CANVAS_WIDTH) / rect.width,
      canvasY: ((e.clientY - rect.top) * CANVAS_HEIGHT) / rect.height,
    });
  }

  // The cell under the pointer in the cells drawn now: a new map (polling) or a zoom
  // made with the keyboard changes what is under a pointer that does not move.
  const hoverCell = hover === null ? null : cellAt(hover.canvasX, hover.canvasY, layout, agg.cellCount);
  const detail: CellDetail | null = hoverCell === null ? null : cellDetail(agg, hoverCell, info.blockSize, info.capacityBytes);

  const aggregated = agg.blocksPerCell > 1;
  return (
    <div className="heatmap-wrap">
      <canvas
        ref={canvasRef}
        width={CANVAS_WIDTH}
        height={CANVAS_HEIGHT}
        className="heatmap-canvas"
        data-testid="heatmap-canvas"
        data-cell-count={agg.cellCount}
        data-blocks-per-cell={agg.blocksPerCell}
        tabIndex={0}
        role="img"
        aria-label={`CBT heatmap of ${info.device}: blocks ${agg.start} to ${agg.end - 1}, ${agg.blocksPerCell} block${aggregated ? 's' : ''} per cell. Plus and minus zoom, arrow keys move.`}
        onMouseMove={onMove}
        onMouseLeave={() => setHover(null)}
        onKeyDown={onKey}
      />
      {hover !== null && detail !== null ? (
        <div
          className="tooltip"
          role="tooltip"
          data-testid="heatmap-tooltip"
          style={{ left: hover.x + 12, top: hover.y + 12 }}
        >
          <div>
            {detail.firstBlock === detail.lastBlock
              ? `Block ${detail.firstBlock}`
              : `Blocks ${detail.firstBlock}–${detail.lastBlock}`}
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
  );
}
