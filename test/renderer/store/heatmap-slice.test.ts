import { describe, expect, it } from 'vitest';
import { encodeBase64 } from '../../../app/shared/base64.js';
import { err, ok } from '../../../app/shared/result.js';
import type { CbtMapEntry } from '../../../app/shared/types.js';
import { createAppStore } from '../../../renderer/src/store/app-store.js';
import { effectiveSinceN } from '../../../renderer/src/store/heatmap-slice.js';
import { createFakeApi } from '../fake-api.js';

function mapEntry(bytes: number[], generationId = 'g1', changesNumber = 3): CbtMapEntry {
  return {
    device: 'd',
    capacityBytes: bytes.length * 4096,
    blockSize: 4096,
    blockCount: bytes.length,
    generationId,
    changesNumber,
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
    expect(fake.calls[0]).toEqual({ method: 'cbtMap', params: { device: 'd' } });
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
    expect(effectiveSinceN(null, null)).toBe(0);
    expect(effectiveSinceN(null, { ...mapEntry([]), changesNumber: 5 })).toBe(4);
    expect(effectiveSinceN(2, { ...mapEntry([]), changesNumber: 5 })).toBe(2);
  });
});
