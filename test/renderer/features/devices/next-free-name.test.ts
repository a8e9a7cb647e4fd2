import { describe, expect, it } from 'vitest';
import { nextFreeName } from '../../../../renderer/src/features/devices/next-free-name.js';

const dev = (id: string, name = id) => ({ id, name });

describe('nextFreeName', () => {
  it('starts at disk1 and skips names in use', () => {
    expect(nextFreeName([])).toBe('disk1');
    expect(nextFreeName([dev('disk1')])).toBe('disk2');
    expect(nextFreeName([dev('disk1'), dev('disk2')])).toBe('disk3');
  });

  it('fills the first gap, and counts ids and display names alike', () => {
    expect(nextFreeName([dev('disk1'), dev('disk3')])).toBe('disk2');
    expect(nextFreeName([dev('/dev/sdb', 'disk1')])).toBe('disk2');
    expect(nextFreeName([dev('disk1', 'sdb')])).toBe('disk2');
    expect(nextFreeName([dev('vm1')], 'vm')).toBe('vm2');
  });
});
