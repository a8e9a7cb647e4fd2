import { describe, expect, it } from 'vitest';
import { nextStep, setupSteps } from '../../../../renderer/src/features/onboarding/setup-steps.js';

describe('first-run steps', () => {
  it('starts with creating a device when there is none', () => {
    const steps = setupSteps({ deviceCount: 0, selectedCount: 0, allocated: false, snapshotCount: 0 });
    expect(steps.map((s) => s.done)).toEqual([false, false, false]);
    expect(nextStep(steps)?.id).toBe('devices');
    expect(steps[0]?.text).toMatch(/Create a lab disk/);
  });

  it('asks to tick devices once some exist, then moves on to storage and the snapshot', () => {
    expect(setupSteps({ deviceCount: 2, selectedCount: 0, allocated: false, snapshotCount: 0 })[0]?.text).toMatch(/Tick/);
    const ticked = setupSteps({ deviceCount: 2, selectedCount: 2, allocated: false, snapshotCount: 0 });
    expect(nextStep(ticked)?.id).toBe('storage');
    expect(nextStep(ticked)?.screen).toBe('storage');
    expect(ticked[0]?.text).toBe('2 devices ticked.');
    const allocated = setupSteps({ deviceCount: 2, selectedCount: 1, allocated: true, snapshotCount: 0 });
    expect(nextStep(allocated)?.id).toBe('snapshot');
    expect(nextStep(allocated)?.screen).toBe('snapshots');
    expect(nextStep(setupSteps({ deviceCount: 2, selectedCount: 1, allocated: true, snapshotCount: 1 }))).toBeNull();
  });

  it('lets the storage step be done before the devices step (any order)', () => {
    const steps = setupSteps({ deviceCount: 1, selectedCount: 0, allocated: true, snapshotCount: 0 });
    expect(steps.map((s) => s.done)).toEqual([false, true, false]);
    expect(nextStep(steps)?.id).toBe('devices');
  });
});
