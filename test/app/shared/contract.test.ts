import { describe, expect, it } from 'vitest';
import {
  CONTRACT_METHODS,
  EVENT_NAMES,
  REQUEST_NAMES,
  eventChannel,
  isEventName,
  isRequestName,
  requestChannel,
} from '../../../app/shared/contract.js';
import type { BlksnapApi } from '../../../app/shared/contract.js';
import { PARAM_SCHEMAS } from '../../../app/shared/validate.js';

describe('CONTRACT_METHODS', () => {
  it('lists every request and event once, events named on...', () => {
    const names = CONTRACT_METHODS.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    for (const m of CONTRACT_METHODS) {
      expect(m.event).toBe(m.name.startsWith('on'));
    }
    expect(EVENT_NAMES.sort()).toEqual(['onHelperState', 'onJob', 'onSnapshotEvent', 'onWorkloadProgress']);
    expect(REQUEST_NAMES).toContain('cbtMap');
    expect(REQUEST_NAMES).toContain('snapshotCreate');
  });

  it('has a params schema for exactly the requests', () => {
    expect(Object.keys(PARAM_SCHEMAS).sort()).toEqual([...REQUEST_NAMES].sort());
  });

  it('marks which requests take params', () => {
    const byName = new Map(CONTRACT_METHODS.map((m) => [m.name, m]));
    expect(byName.get('getStatus')?.hasParams).toBe(false);
    expect(byName.get('listSnapshots')?.hasParams).toBe(false);
    expect(byName.get('snapshotTake')?.hasParams).toBe(true);
    expect(byName.get('cbtMap')?.hasParams).toBe(true);
  });

  it('can build a working API object generically', async () => {
    const calls: [string, unknown][] = [];
    const listeners = new Map<string, ((p: unknown) => void)[]>();
    const api: Record<string, unknown> = {};
    for (const m of CONTRACT_METHODS) {
      if (m.event) {
        api[m.name] = (cb: (p: unknown) => void) => {
          listeners.set(m.name, [...(listeners.get(m.name) ?? []), cb]);
          return () => listeners.set(m.name, (listeners.get(m.name) ?? []).filter((x) => x !== cb));
        };
      } else {
        api[m.name] = (params?: unknown) => {
          calls.push([m.name, params]);
          return Promise.resolve({ ok: true, value: null });
        };
      }
    }
    const typed = api as unknown as BlksnapApi;
    await typed.snapshotTake({ snapshotId: 'x' });
    await typed.listDevices();
    expect(calls).toEqual([
      ['snapshotTake', { snapshotId: 'x' }],
      ['listDevices', undefined],
    ]);
    const got: unknown[] = [];
    const off = typed.onHelperState((s) => got.push(s));
    listeners.get('onHelperState')?.forEach((cb) => cb({ state: 'lost' }));
    off();
    listeners.get('onHelperState')?.forEach((cb) => cb({ state: 'connected' }));
    expect(got).toEqual([{ state: 'lost' }]);
  });

  it('name guards and channels', () => {
    expect(isRequestName('listDevices')).toBe(true);
    expect(isRequestName('onSnapshotEvent')).toBe(false);
    expect(isRequestName('constructor')).toBe(false);
    expect(isEventName('onSnapshotEvent')).toBe(true);
    expect(isEventName('listDevices')).toBe(false);
    expect(requestChannel('cbtMap')).toBe('blksnap:cbtMap');
    expect(eventChannel('onHelperState')).toBe('blksnap:event:onHelperState');
  });
});
