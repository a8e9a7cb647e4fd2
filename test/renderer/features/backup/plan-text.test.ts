import { describe, expect, it } from 'vitest';
import { allowedKinds, chainSentence, defaultKind, reasonText } from '../../../../renderer/src/features/backup/plan-text.js';
import { planEntry } from '../../fixtures.js';

const chain = { points: 2, lastPoint: { id: '0002-20261201-140200-incremental', kind: 'incremental' as const, time: '2026-12-01T14:02:00Z' } };

describe('backup plan in words', () => {
  it('allows for the set only the kinds every device allows, and defaults to incremental when possible', () => {
    const both = { devices: [planEntry('a', { ...chain, allowed: ['full', 'incremental', 'differential'] }), planEntry('b', { ...chain, allowed: ['full', 'incremental', 'differential'] })] };
    expect(allowedKinds(both)).toEqual(['full', 'incremental', 'differential']);
    expect(defaultKind(both)).toBe('incremental');
    const oneBroken = { devices: [both.devices[0]!, planEntry('b', { ...chain, allowed: ['full'], reason: 'the device grew from 20 GiB to 30 GiB' })] };
    expect(allowedKinds(oneBroken)).toEqual(['full']);
    expect(defaultKind(oneBroken)).toBe('full');
  });

  it("gives the helper's reason with the device name, and explains an empty folder", () => {
    expect(reasonText(planEntry('disk1', { ...chain, reason: 'the change tracker was reset (new generation id)' }))).toBe(
      'disk1: the change tracker was reset (new generation id)',
    );
    expect(reasonText(planEntry('disk2'))).toBe('disk2: there is no earlier backup of this device in the folder.');
    expect(reasonText(planEntry('disk2', { reason: 'there is no backup in /srv/b/disk2 to continue from' }))).toBe(
      'disk2: there is no earlier backup of this device in the folder.',
    );
    expect(reasonText(planEntry('disk3', { ...chain, allowed: ['full', 'incremental', 'differential'] }))).toBeNull();
  });

  it('describes a chain by its points and last point', () => {
    expect(chainSentence(planEntry('disk1', chain), () => 'YESTERDAY')).toBe('disk1: 2 points, last incremental YESTERDAY.');
    expect(chainSentence(planEntry('disk1'), () => 'x')).toBe('disk1: no backup yet in this folder; the first one is a full backup.');
  });
});
