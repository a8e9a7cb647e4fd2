import { describe, expect, it, vi } from 'vitest';
import { encodeBase64 } from '../../../app/shared/base64.js';
import { err, ok } from '../../../app/shared/result.js';
import type { AppStatus, CbtMapEntry, CbtTable } from '../../../app/shared/types.js';
import { createAppStore } from '../../../renderer/src/store/app-store.js';
import { effectiveSinceN, effectiveView, liveSupported, newestNumber } from '../../../renderer/src/store/heatmap-slice.js';
import { createFakeApi } from '../fake-api.js';

function mapEntry(bytes: number[], generationId = 'g1', changesNumber = 3, table: CbtTable = 'snapshot'): CbtMapEntry {
  return {
    device: 'd',
    capacityBytes: bytes.length * 4096,
    blockSize: 4096,
    blockCount: bytes.length,
    generationId,
    changesNumber,
    table,
    activeNumber: changesNumber + 1,
    encoding: 'base64',
    data: encodeBase64(Uint8Array.from(bytes)),
  };
}

describe('heatmap slice', () => {
  it('loads and decodes the map of the chosen device', async () => {
    const fake = createFakeApi({ cbtMap: () => ok(mapEntry([0, 1, 2, 3])) });
    const store = createAppStore(fake.api, { now: () => 99 });
    await store.getState().loadHeatmap();
    expect(fake.calls).toEqual([]); // no device chosen
    store.getState().setHeatmapDevice('d');
    await store.getState().loadHeatmap();
    const h = store.getState().heatmap;
    expect(Array.from(h?.map ?? [])).toEqual([0, 1, 2, 3]);
    expect(h?.info.generationId).toBe('g1');
    expect(h?.fetchedAt).toBe(99);
    // No status yet: the helper's capabilities are unknown, so the snapshot table.
    expect(fake.calls[0]).toEqual({ method: 'cbtMap', params: { device: 'd', table: 'snapshot' } });
    expect(h?.table).toBe('snapshot');
    expect(h?.activeNumber).toBe(4);
  });

  it('does not overlap requests', async () => {
    let resolve: (() => void) | undefined;
    const fake = createFakeApi({
      cbtMap: () =>
        new Promise((r) => {
          resolve = () => r(ok(mapEntry([1])));
        }),
    });
    const store = createAppStore(fake.api);
    store.getState().setHeatmapDevice('d');
    const first = store.getState().loadHeatmap();
    await store.getState().loadHeatmap();
    expect(fake.calls).toHaveLength(1);
    resolve?.();
    await first;
    expect(store.getState().heatmap?.map.length).toBe(1);
  });

  it('keeps the error, and resets the chosen N on a new generation', async () => {
    let entry = mapEntry([1, 2], 'g1');
    let fail = false;
    const fake = createFakeApi({ cbtMap: () => (fail ? err('ENODATA', 'no tracker') : ok(entry)) });
    const store = createAppStore(fake.api);
    store.getState().setHeatmapDevice('d');
    await store.getState().loadHeatmap();
    store.getState().setSinceN(1);
    entry = mapEntry([1, 2], 'g1');
    await store.getState().loadHeatmap();
    expect(store.getState().sinceN).toBe(1);
    entry = mapEntry([0, 0], 'g2', 1);
    await store.getState().loadHeatmap();
    expect(store.getState().sinceN).toBeNull();
    fail = true;
    await store.getState().loadHeatmap();
    expect(store.getState().heatmapError?.code).toBe('ENODATA');
  });

  it('reports a malformed map as PROTOCOL', async () => {
    const fake = createFakeApi({ cbtMap: () => ok({ ...mapEntry([1]), data: '!!!' }) });
    const store = createAppStore(fake.api);
    store.getState().setHeatmapDevice('d');
    await store.getState().loadHeatmap();
    expect(store.getState().heatmapError?.code).toBe('PROTOCOL');
  });

  it('clamps zoom and N; defaults N to the previous change number', () => {
    const store = createAppStore(createFakeApi().api);
    store.getState().setZoom(0);
    expect(store.getState().zoom).toBe(1);
    store.getState().setZoom(1e9);
    expect(store.getState().zoom).toBe(1024);
    store.getState().setSinceN(300);
    expect(store.getState().sinceN).toBe(255);
    const info = { ...mapEntry([]), changesNumber: 5 };
    expect(effectiveSinceN(null, null)).toBe(0);
    // Snapshot table: changes of the last take (newest 5, N = 4).
    expect(effectiveSinceN(null, { info, table: 'snapshot', activeNumber: 6 })).toBe(4);
    // Live: changes since the last take (newest = active 6, N = 5 = the last take's number).
    expect(effectiveSinceN(null, { info, table: 'active', activeNumber: 6 })).toBe(5);
    expect(effectiveSinceN(2, { info, table: 'active', activeNumber: 6 })).toBe(2);
    // After the 255 wrap the active number restarts at 1: every written block is new.
    expect(effectiveSinceN(null, { info: { ...info, changesNumber: 255 }, table: 'active', activeNumber: 1 })).toBe(0);
    expect(newestNumber({ info, table: 'snapshot', activeNumber: 6 })).toBe(5);
    expect(newestNumber({ info, table: 'active', activeNumber: 6 })).toBe(6);
  });

  it('defaults to the live view only where the helper has the active table', () => {
    const status = (capabilities: string[]): AppStatus => ({
      driver: 'embedded',
      driverVersion: null,
      appVersion: '0',
      protocolVersion: 1,
      capabilities,
      helper: { state: 'connected' },
    });
    expect(liveSupported(null)).toBe(false);
    expect(liveSupported(status(['events']))).toBe(false);
    expect(liveSupported(status(['events', 'cbt-active-table']))).toBe(true);
    expect(effectiveView(null, true)).toBe('live');
    expect(effectiveView('snapshot', true)).toBe('snapshot');
    expect(effectiveView(null, false)).toBe('snapshot');
    expect(effectiveView('live', false)).toBe('snapshot');
  });

  it('reads the active table in the live view, and rereads at once when the view changes', async () => {
    const fake = createFakeApi({ cbtMap: (p) => ok(mapEntry(p.table === 'active' ? [0, 4, 4] : [0, 3, 0], 'g1', 3, p.table ?? 'snapshot')) });
    const store = createAppStore(fake.api);
    store.setState({
      status: { driver: 'embedded', driverVersion: null, appVersion: '0', protocolVersion: 1, capabilities: ['cbt-active-table'], helper: { state: 'connected' } },
    });
    store.getState().setHeatmapDevice('d');
    await store.getState().loadHeatmap();
    expect(fake.calls.at(-1)?.params).toEqual({ device: 'd', table: 'active' });
    expect(store.getState().heatmap).toMatchObject({ table: 'active', activeNumber: 4 });
    expect(Array.from(store.getState().heatmap?.map ?? [])).toEqual([0, 4, 4]);
    store.getState().setSinceN(1);
    store.getState().setHeatmapView('snapshot');
    // The old table is dropped at once, N returns to its default, and the snapshot table is read.
    expect(store.getState().heatmap).toBeNull();
    expect(store.getState().sinceN).toBeNull();
    await vi.waitFor(() => expect(store.getState().heatmap?.table).toBe('snapshot'));
    expect(fake.calls.at(-1)?.params).toEqual({ device: 'd', table: 'snapshot' });
    expect(Array.from(store.getState().heatmap?.map ?? [])).toEqual([0, 3, 0]);
  });

  it('drops an answer for the table it no longer shows and reads the new one after it', async () => {
    const pending: (() => void)[] = [];
    const fake = createFakeApi({
      cbtMap: (p) => new Promise((r) => pending.push(() => r(ok(mapEntry([p.table === 'active' ? 4 : 3], 'g1', 3, p.table ?? 'snapshot'))))),
    });
    const store = createAppStore(fake.api);
    store.setState({
      status: { driver: 'embedded', driverVersion: null, appVersion: '0', protocolVersion: 1, capabilities: ['cbt-active-table'], helper: { state: 'connected' } },
    });
    store.getState().setHeatmapDevice('d');
    const first = store.getState().loadHeatmap(); // live, in flight
    store.getState().setHeatmapView('snapshot');
    expect(fake.calls).toHaveLength(1); // no overlap
    pending.shift()?.();
    await first;
    expect(store.getState().heatmap).toBeNull(); // the live answer was dropped
    await vi.waitFor(() => expect(fake.calls).toHaveLength(2));
    expect(fake.calls[1]?.params).toEqual({ device: 'd', table: 'snapshot' });
    pending.shift()?.();
    await vi.waitFor(() => expect(store.getState().heatmap?.map[0]).toBe(3));
  });
});
