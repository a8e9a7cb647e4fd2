import { describe, expect, it } from 'vitest';
import { err, ok } from '../../../app/shared/result.js';
import type { WorkloadProgress } from '../../../app/shared/types.js';
import { createAppStore } from '../../../renderer/src/store/app-store.js';
import { roundProgress } from '../../../renderer/src/store/workload-slice.js';
import { createFakeApi } from '../fake-api.js';

const MiB = 1024 * 1024;

function progress(overrides: Partial<WorkloadProgress> = {}): WorkloadProgress {
  return {
    device: 'd',
    running: true,
    pattern: 'random',
    rateMiBps: 4,
    actualMiBps: 3.96,
    bytesWritten: 10 * MiB + 1234,
    writes: 100,
    elapsedMs: 2600,
    ...overrides,
  };
}

describe('workload slice', () => {
  it('rounds progress before storing it', () => {
    expect(roundProgress(progress())).toEqual({
      running: true,
      pattern: 'random',
      rateMiBps: 4,
      actualMiBps: 4,
      writtenMiB: 10,
      elapsedS: 2,
      error: null,
    });
  });

  it('does not touch the store for progress that rounds to the same view', () => {
    const store = createAppStore(createFakeApi().api);
    let updates = 0;
    store.subscribe(() => updates++);
    store.getState().applyWorkloadProgress(progress());
    const view = store.getState().workloads['d'];
    store.getState().applyWorkloadProgress(progress({ bytesWritten: 10 * MiB + 5000, writes: 101, elapsedMs: 2900 }));
    expect(updates).toBe(1);
    expect(store.getState().workloads['d']).toBe(view);
    store.getState().applyWorkloadProgress(progress({ bytesWritten: 11 * MiB }));
    expect(updates).toBe(2);
    expect(store.getState().workloads['d']?.writtenMiB).toBe(11);
  });

  it('starts and stops a workload through the API', async () => {
    const fake = createFakeApi({ workloadStart: () => ok(null), workloadStop: () => ok(null) });
    const store = createAppStore(fake.api);
    expect(await store.getState().startWorkload('d', 8, 'hotspot')).toBeNull();
    expect(fake.calls[0]).toEqual({ method: 'workloadStart', params: { device: 'd', rateMiBps: 8, pattern: 'hotspot' } });
    expect(store.getState().workloads['d']?.running).toBe(true);
    expect(await store.getState().stopWorkload('d')).toBeNull();
    expect(store.getState().workloads['d']?.running).toBe(false);
  });

  it('reports a start error; treats ESRCH on stop as already stopped', async () => {
    const fake = createFakeApi({
      workloadStart: () => err('EALREADY', 'running'),
      workloadStop: () => err('ESRCH', 'none'),
    });
    const store = createAppStore(fake.api);
    expect((await store.getState().startWorkload('d', 1, 'random'))?.code).toBe('EALREADY');
    expect(await store.getState().stopWorkload('d')).toBeNull();
  });
});
