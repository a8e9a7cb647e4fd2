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

describe('HeatmapCanvas ruler, partitions and selection', () => {
  // 1024 blocks of 64 KiB (64 MiB): 64 x 16 cells of 16 x 16 pixels, 4 MiB per row
  const map = new Uint8Array(1024);
  for (let b = 64; b < 96; b++) map[b] = 2; // row 1, columns 0..31: 2 MiB written in snapshot 2
  map[100] = 1; // older than N = 1: not counted
  const partitions = [
    { number: 1, startBytes: 1024 * 1024, sizeBytes: 31 * 1024 * 1024, name: 'boot' },
    { number: 2, startBytes: 32 * 1024 * 1024, sizeBytes: 32 * 1024 * 1024, name: 'data' },
  ];
  const draw = () =>
    render(<HeatmapCanvas info={info(1024)} map={map} start={0} end={1024} newest={2} sinceN={null} countSince={1} partitions={partitions} dark={false} onKey={noKey} />);

  it('fills the canvas with cells at zoom 1 (64 x 16 for 1024 blocks)', () => {
    draw();
    const el = screen.getByTestId('heatmap-canvas');
    expect([el.getAttribute('data-cols'), el.getAttribute('data-rows'), el.getAttribute('data-cell-count')]).toEqual(['64', '16', '1024']);
  });

  it('labels the ruler in bytes at round offsets', () => {
    draw();
    const ticks = Array.from(screen.getByTestId('heatmap-ruler').querySelectorAll('[data-byte]'));
    expect(ticks.map((t) => t.textContent)).toEqual(['0 B', '16 MiB', '32 MiB', '48 MiB']);
    expect(ticks.map((t) => (t as HTMLElement).style.top)).toEqual(['0%', '25%', '50%', '75%']);
  });

  it('draws each partition boundary where it lies, and names the partitions', () => {
    draw();
    const lines = screen.getAllByTestId('heatmap-partition-line');
    // 1 MiB: row 0, column 16 (x = 256); 32 MiB: start of row 8; 64 MiB (the end) is not drawn
    expect(lines.map((l) => [l.getAttribute('data-byte'), l.getAttribute('d')])).toEqual([
      [String(1024 * 1024), 'M1024 0 H256 V16 H0'],
      [String(32 * 1024 * 1024), 'M0 128 H1024'],
      [String(32 * 1024 * 1024), 'M0 128 H1024'],
    ]);
    expect(screen.getByTestId('heatmap-partitions').textContent).toBe('Partitions: boot 1 MiB–32 MiB, data 32 MiB–64 MiB');
  });

  it('a drag over rows 1 and 2 shows the changed bytes of that range since N', () => {
    draw();
    const el = canvas();
    fireEvent.mouseDown(el, { clientX: 1, clientY: 17, button: 0 });
    fireEvent.mouseMove(el, { clientX: 1023, clientY: 40, buttons: 1 });
    fireEvent.mouseUp(el, { clientX: 1023, clientY: 40 });
    const text = screen.getByTestId('heatmap-selection').textContent ?? '';
    // rows 1-2: blocks 64..191, bytes 4 MiB..12 MiB; 32 blocks changed in snapshot 2 (block 100 is older)
    expect(text).toMatch(/^Selected bytes 4 MiB–12 MiB \(8 MiB\): 2 MiB changed since snapshot 1 \(32 changed blocks × 64 KiB\)/);
    expect(screen.getByTestId('heatmap-selection-changed').getAttribute('data-bytes')).toBe(String(2 * 1024 * 1024));
    const rects = screen.getAllByTestId('heatmap-selection-rect').map((r) => ['x', 'y', 'width', 'height'].map((a) => r.getAttribute(a)).join(' '));
    expect(rects).toEqual(['0 16 1024 16', '0 32 1024 16']);
    // Escape clears it
    fireEvent.keyDown(el, { key: 'Escape' });
    expect(screen.queryByTestId('heatmap-selection')).toBeNull();
  });

  it('Shift + arrow keys select from the first cell: right by a cell, down by a row', () => {
    draw();
    const el = canvas();
    fireEvent.keyDown(el, { key: 'ArrowRight', shiftKey: true });
    expect(screen.getByTestId('heatmap-selection').textContent).toMatch(/^Selected bytes 0 B–64 KiB \(64 KiB\)/);
    fireEvent.keyDown(el, { key: 'ArrowRight', shiftKey: true });
    expect(screen.getByTestId('heatmap-selection').textContent).toMatch(/^Selected bytes 0 B–128 KiB/);
    fireEvent.keyDown(el, { key: 'ArrowDown', shiftKey: true });
    // cells 0..65: blocks 0..65, of which 64 and 65 changed in snapshot 2
    expect(screen.getByTestId('heatmap-selection').textContent).toMatch(/^Selected bytes 0 B–4\.1 MiB \(4\.1 MiB\): 128 KiB changed since snapshot 1/);
    fireEvent.keyDown(el, { key: 'Escape' });
    expect(screen.queryByTestId('heatmap-selection')).toBeNull();
  });

  it('a selection dragged backwards is the same range', () => {
    draw();
    const el = canvas();
    fireEvent.mouseDown(el, { clientX: 1023, clientY: 40, button: 0 });
    fireEvent.mouseMove(el, { clientX: 1, clientY: 17, buttons: 1 });
    expect(screen.getByTestId('heatmap-selection').textContent).toMatch(/^Selected bytes 4 MiB–12 MiB/);
  });
});
