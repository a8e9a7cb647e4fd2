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

interface Hover {
  x: number;
  y: number;
  detail: CellDetail;
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
    const x = ((e.clientX - rect.left) * CANVAS_WIDTH) / rect.width;
    const y = ((e.clientY - rect.top) * CANVAS_HEIGHT) / rect.height;
    const cell = cellAt(x, y, layout, agg.cellCount);
    if (cell === null) {
      setHover(null);
      return;
    }
    setHover({
      x: e.clientX - rect.left,
      y: e.clientY - rect.top,
      detail: cellDetail(agg, cell, info.blockSize, info.capacityBytes),
    });
  }

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
      {hover !== null ? (
        <div
          className="tooltip"
          role="tooltip"
          data-testid="heatmap-tooltip"
          style={{ left: hover.x + 12, top: hover.y + 12 }}
        >
          <div>
            {hover.detail.firstBlock === hover.detail.lastBlock
              ? `Block ${hover.detail.firstBlock}`
              : `Blocks ${hover.detail.firstBlock}–${hover.detail.lastBlock}`}
          </div>
          <div>
            Bytes {hover.detail.firstByte}–{hover.detail.endByte - 1} ({formatBytes(hover.detail.endByte - hover.detail.firstByte)})
          </div>
          <div>
            {aggregated ? 'Highest change number' : 'Change number'}: {hover.detail.changeNumber}
            {hover.detail.changeNumber === 0 ? ' (not written)' : ''}
          </div>
        </div>
      ) : null}
    </div>
  );
}
