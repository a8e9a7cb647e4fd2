// @vitest-environment jsdom
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { err, ok } from '../../../../app/shared/result.js';
import type { AppStatus, SnapshotEntry } from '../../../../app/shared/types.js';
import { StorageGauges } from '../../../../renderer/src/features/storage/StorageGauges.js';
import { createAppStore } from '../../../../renderer/src/store/app-store.js';
import { StoreProvider } from '../../../../renderer/src/store/context.js';
import { createFakeApi } from '../../fake-api.js';
import type { Handlers } from '../../fake-api.js';
import { EMBEDDED_STATUS, VAL7_STATUS } from '../../render-app.js';
import { MiB, snapshot } from '../../fixtures.js';

afterEach(cleanup);

function held(usedMiB: number, limitMiB = 100): SnapshotEntry {
  return snapshot('s1', ['disk1'], {
    state: 'taken',
    storage: { path: '/var/tmp/d.img', limitBytes: limitMiB * MiB, allocatedBytes: usedMiB * MiB, usedBytes: usedMiB * MiB },
  });
}


function heldOnKernel(limitMiB: number): SnapshotEntry {
  return snapshot('s1', ['/dev/vdb'], {
    state: 'taken',
    storage: { path: '/var/tmp/diff', limitBytes: limitMiB * MiB, allocatedBytes: limitMiB * MiB, usedBytes: null },
  });
}

async function setup(capabilities: string[], handlers: Handlers = {}, base: AppStatus = EMBEDDED_STATUS) {
  let t = 0;
  let used = 10;
  let limit = 100;
  const fake = createFakeApi({
    getStatus: () => ok({ ...base, capabilities }),
    listSnapshots: () => ok([base.driver === 'kernel' ? heldOnKernel(limit) : held(used, limit)]),
    snapshotGrowStorage: (p) => {
      limit += p.addBytes / MiB;
      return ok(null);
    },
    ...handlers,
  });
  const store = createAppStore(fake.api, { now: () => t });
  await store.getState().refreshStatus();
  render(
    <StoreProvider store={store}>
      <StorageGauges />
    </StoreProvider>,
  );
  const tick = async (seconds: number, usedMiB: number) => {
    t += seconds * 1000;
    used = usedMiB;
    await store.getState().refreshSnapshots();
  };
  return { fake, store, tick };
}

describe('storage gauges', () => {
  it('forecasts the time to the limit and warns before it is reached', async () => {
    const { tick } = await setup([]);
    await tick(0, 10);
    await waitFor(() => expect(screen.getByTestId('storage-forecast').textContent).toMatch(/measuring/));
    await tick(10, 20); // 1 MiB/s, 80 MiB left: 80 s, under the 2-minute warning
    await waitFor(() => expect(screen.getByTestId('storage-forecast').textContent).toMatch(/1 MiB\/s.*about 80 s/));
    expect(screen.getByTestId('storage-forecast').dataset.level).toBe('warn');
    expect(screen.getByTestId('storage-forecast').textContent).toMatch(/Grow the storage, stop the writes/);
  });

  it('offers a one-click grow where the driver allows it, doubling the limit', async () => {
    const { fake, tick } = await setup(['storage-grow']);
    await tick(0, 10);
    const button = await screen.findByTestId('grow-storage');
    expect(button.textContent).toBe('Grow by 100 MiB (to 200 MiB)');
    fireEvent.click(button);
    await waitFor(() => expect(screen.getByTestId('storage-gauge').textContent).toMatch(/limit 200 MiB/));
    expect(fake.paramsOf('snapshotGrowStorage')).toEqual([{ snapshotId: 's1', addBytes: 100 * MiB }]);
  });

  it('offers no grow without the capability, and says why a refused grow failed', async () => {
    const first = await setup([]);
    await first.tick(0, 10);
    await screen.findByTestId('storage-forecast');
    expect(screen.queryByTestId('grow-storage')).toBeNull();
    cleanup();
    const { store, tick } = await setup(['storage-grow'], { snapshotGrowStorage: () => err('ENOSPC', 'the storage has overflowed') });
    await tick(0, 10);
    fireEvent.click(await screen.findByTestId('grow-storage'));
    await waitFor(() => expect(store.getState().notice?.text).toBe('ENOSPC: the storage has overflowed'));
  });

  it('offers the grow for a snapshot of the VAL-7 kernel module (the helper advertises it there), not for the other modules', async () => {
    const val7 = await setup(['storage-grow'], {}, VAL7_STATUS);
    await val7.tick(0, 0);
    const button = await screen.findByTestId('grow-storage');
    expect(button.textContent).toBe('Grow by 100 MiB (to 200 MiB)');
    fireEvent.click(button);
    await waitFor(() => expect(screen.getByTestId('storage-gauge').textContent).toMatch(/used n\/a \/ allocated 200 MiB \/ limit 200 MiB/));
    expect(val7.fake.paramsOf('snapshotGrowStorage')).toEqual([{ snapshotId: 's1', addBytes: 100 * MiB }]);
    cleanup();
    // v6 / lk6.15: the helper does not advertise storage-grow
    const lk615: AppStatus = { ...VAL7_STATUS, kernelModule: { ...VAL7_STATUS.kernelModule!, dialect: 'lk6.15' } };
    const other = await setup([], {}, lk615);
    await other.tick(0, 0);
    await screen.findByTestId('storage-gauge');
    expect(screen.queryByTestId('grow-storage')).toBeNull();
  });
});
