import { describe, expect, it } from 'vitest';
import { activeChangeNumber, CBT_ACTIVE_TABLE } from '../../../app/shared/cbt.js';
import { CBT_ACTIVE_TABLE_CAPABILITY } from '../../../engine/protocol/methods.js';

describe('app/shared cbt', () => {
  it('names the same capability as the helper protocol', () => {
    expect(CBT_ACTIVE_TABLE).toBe(CBT_ACTIVE_TABLE_CAPABILITY);
  });

  it('gives the active number after a take as cbt_map_switch does (restart at 1 after 255)', () => {
    expect(activeChangeNumber(0)).toBe(1);
    expect(activeChangeNumber(1)).toBe(2);
    expect(activeChangeNumber(254)).toBe(255);
    expect(activeChangeNumber(255)).toBe(1);
  });
});
