import { describe, expect, it } from 'vitest';
import { resolveOwner } from '../../../engine/helper/owner.js';
import { isRoot } from '../../helpers/env.js';

describe('resolveOwner', () => {
  it('is the process itself without PKEXEC_UID', () => {
    expect(resolveOwner({})).toEqual({ uid: process.getuid?.(), gid: process.getgid?.() });
  });

  it.skipIf(!isRoot)('[root] is PKEXEC_UID with its primary group from /etc/passwd', () => {
    expect(resolveOwner({ PKEXEC_UID: "65534" })).toMatchObject({ uid: 65534, gid: 65534, groups: expect.arrayContaining([65534]) });
    expect(() => resolveOwner({ PKEXEC_UID: '12ab' })).toThrow(/not a user id/);
  });
});
