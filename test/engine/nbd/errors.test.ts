import { describe, expect, it } from 'vitest';
import { BlksnapError } from '../../../engine/abi/errno.js';
import { nbdErrorFor } from '../../../engine/nbd/errors.js';

describe('nbdErrorFor', () => {
  it('maps device errnos to the values the NBD protocol allows', () => {
    expect(nbdErrorFor(new BlksnapError('EPERM', 'x'))).toBe(1);
    expect(nbdErrorFor(new BlksnapError('EROFS', 'x'))).toBe(1);
    expect(nbdErrorFor(new BlksnapError('EIO', 'x'))).toBe(5);
    expect(nbdErrorFor(new BlksnapError('ENOMEM', 'x'))).toBe(12);
    expect(nbdErrorFor(new BlksnapError('EINVAL', 'x'))).toBe(22);
    expect(nbdErrorFor(new BlksnapError('ENOSPC', 'x'))).toBe(28);
    expect(nbdErrorFor(new BlksnapError('EFBIG', 'x'))).toBe(28);
    expect(nbdErrorFor(new BlksnapError('EOPNOTSUPP', 'x'))).toBe(95);
  });

  it('maps Node system errors by code and anything else to EIO', () => {
    expect(nbdErrorFor(Object.assign(new Error('disk full'), { code: 'ENOSPC' }))).toBe(28);
    expect(nbdErrorFor(Object.assign(new Error('quota'), { code: 'EDQUOT' }))).toBe(28);
    expect(nbdErrorFor(Object.assign(new Error('denied'), { code: 'EACCES' }))).toBe(1);
    expect(nbdErrorFor(new BlksnapError('ENODEV', 'image released'))).toBe(5);
    expect(nbdErrorFor(new Error('plain'))).toBe(5);
    expect(nbdErrorFor('string')).toBe(5);
  });
});
