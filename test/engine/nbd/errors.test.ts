import { describe, expect, it } from 'vitest';
import { BlksnapError } from '../../../engine/abi/errno.js';
import { nbdErrorFor, nbdErrorForErrno } from '../../../engine/nbd/errors.js';

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

  it('maps errno numbers a thread reports (Linux x86-64 values) the same way', () => {
    expect(nbdErrorForErrno(28)).toBe(28); // ENOSPC
    expect(nbdErrorForErrno(122)).toBe(28); // EDQUOT
    expect(nbdErrorForErrno(27)).toBe(28); // EFBIG
    expect(nbdErrorForErrno(13)).toBe(1); // EACCES -> EPERM
    expect(nbdErrorForErrno(30)).toBe(1); // EROFS -> EPERM
    expect(nbdErrorForErrno(95)).toBe(95); // EOPNOTSUPP
    expect(nbdErrorForErrno(9)).toBe(5); // EBADF -> EIO
    expect(nbdErrorForErrno(5)).toBe(5);
    expect(nbdErrorForErrno(99999)).toBe(5);
  });
});
