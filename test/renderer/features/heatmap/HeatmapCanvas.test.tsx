// @vitest-environment jsdom
import { cleanup, fireEvent, render, screen } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CbtInfoEntry } from '../../../../app/shared/types.js';
import { CANVAS_HEIGHT, CANVAS_WIDTH, HeatmapCanvas } from '../../../../renderer/src/features/heatmap/HeatmapCanvas.js';

afterEach(cleanup);

beforeEach(() => {
  // jsdom has no 2D context: the paint is skipped, the hover arithmetic is what is tested.
  vi.spyOn(HTMLCanvasElement.prototype, 'getContext').mockReturnValue(null);
});

const BLOCK = 64 * 1024;

function info(blockCount: number, capacityBytes = blockCount * BLOCK): CbtInfoEntry {
  return { device: 'disk1', capacityBytes, blockSize: BLOCK, blockCount, generationId: 'g', changesNumber: 1 };
}

function canvas(): HTMLElement {
  const el = screen.getByTestId('heatmap-canvas');
  el.getBoundingClientRect = () =>
    ({ left: 0, top: 0, width: CANVAS_WIDTH, height: CANVAS_HEIGHT, right: CANVAS_WIDTH, bottom: CANVAS_HEIGHT, x: 0, y: 0 }) as DOMRect;
  return el;
}

const noKey = () => undefined;

describe('HeatmapCanvas tooltip', () => {
  it('follows a new map under a still pointer (live polling): the change number shown is the current one', () => {
    const map = new Uint8Array(16);
    const view = render(<HeatmapCanvas info={info(16)} map={map} start={0} end={16} newest={2} sinceN={null} countSince={0} partitions={[]} dark={false} onKey={noKey} />);
    fireEvent.mouseMove(canvas(), { clientX: 1, clientY: 1 });
    expect(screen.getByTestId('heatmap-tooltip').textContent).toContain('Change number: 0 (not written)');
    const written = new Uint8Array(16);
    written[0] = 2;
    view.rerender(<HeatmapCanvas info={info(16)} map={written} start={0} end={16} newest={2} sinceN={null} countSince={0} partitions={[]} dark={false} onKey={noKey} />);
    expect(screen.getByTestId('heatmap-tooltip').textContent).toContain('Change number: 2');
  });

  it('follows a zoom made with the keyboard: the range shown is that of the cell now under the pointer', () => {
    const map = new Uint8Array(1000);
    const view = render(<HeatmapCanvas info={info(1000)} map={map} start={0} end={1000} newest={2} sinceN={null} countSince={0} partitions={[]} dark={false} onKey={noKey} />);
    fireEvent.mouseMove(canvas(), { clientX: 1, clientY: 1 });
    expect(screen.getByTestId('heatmap-tooltip').textContent).toContain('Block 0');
    view.rerender(<HeatmapCanvas info={info(1000)} map={map} start={500} end={750} newest={2} sinceN={null} countSince={0} partitions={[]} dark={false} onKey={noKey} />);
    expect(screen.getByTestId('heatmap-tooltip').textContent).toContain('Block 500');
  });

  it('gives the last block of a device whose size is not a multiple of the block size its real byte range', () => {
    const capacity = 3 * BLOCK + 4096;
    render(<HeatmapCanvas info={info(4, capacity)} map={new Uint8Array(4)} start={0} end={4} newest={1} sinceN={null} countSince={0} partitions={[]} dark={false} onKey={noKey} />);
    // 4 cells of 256 px on one row: the fourth starts at x = 768.
    fireEvent.mouseMove(canvas(), { clientX: 800, clientY: 1 });
    const text = screen.getByTestId('heatmap-tooltip').textContent;
    expect(text).toContain('Block 3');
    expect(text).toContain(`Bytes ${3 * BLOCK}–${capacity - 1} (4 KiB)`);
  });
});
