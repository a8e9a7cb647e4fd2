import { describe, expect, it } from 'vitest';
import { ERRNO } from '../../../engine/abi/errno.js';
import { BlksnapError } from '../../../engine/abi/errno.js';
import {
  ContractFailure,
  ERRNO_CODES,
  ERROR_CODES,
  err,
  formatError,
  isErrorCode,
  ok,
  toContractError,
  unwrap,
} from '../../../app/shared/result.js';

describe('ErrorCode', () => {
  it('mirrors every errno name of engine/abi exactly', () => {
    expect([...ERRNO_CODES].sort()).toEqual(Object.keys(ERRNO).sort());
  });

  it('includes the app codes and nothing twice', () => {
    for (const code of ['HELPER_UNAVAILABLE', 'HELPER_LOST', 'PROTOCOL', 'UNAUTHORIZED', 'INTERNAL']) {
      expect(isErrorCode(code)).toBe(true);
    }
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    expect(isErrorCode('EWHATEVER')).toBe(false);
    expect(isErrorCode(5)).toBe(false);
    expect(isErrorCode('toString')).toBe(false);
  });
});

describe('Result helpers', () => {
  it('ok and err build the two shapes; detail only when given', () => {
    expect(ok(3)).toEqual({ ok: true, value: 3 });
    expect(err('EBUSY', 'busy')).toEqual({ ok: false, error: { code: 'EBUSY', message: 'busy' } });
    expect(err('EIO', 'x', 'd').error.detail).toBe('d');
    expect('detail' in err('EIO', 'x').error).toBe(false);
  });

  it('unwrap returns the value or throws a ContractFailure with the code', () => {
    expect(unwrap(ok('v'))).toBe('v');
    try {
      unwrap(err('ENOSPC', 'full', 'detail'));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ContractFailure);
      expect((e as ContractFailure).code).toBe('ENOSPC');
      expect((e as ContractFailure).detail).toBe('detail');
    }
  });

  it('toContractError keeps a BlksnapError errno and strips the prefix', () => {
    const e = toContractError(new BlksnapError('EBUSY', 'the device is in a snapshot'));
    expect(e).toEqual({ code: 'EBUSY', message: 'the device is in a snapshot' });
  });

  it('toContractError keeps a plain {code} object and falls back otherwise', () => {
    expect(toContractError({ code: 'HELPER_LOST', message: 'gone' })).toEqual({ code: 'HELPER_LOST', message: 'gone' });
    expect(toContractError(new Error('boom'))).toEqual({ code: 'INTERNAL', message: 'boom' });
    expect(toContractError({ code: 'ENOTREAL', message: 'm' }, 'PROTOCOL').code).toBe('PROTOCOL');
    expect(toContractError('text')).toEqual({ code: 'INTERNAL', message: 'text' });
  });

  it('formatError joins code and message', () => {
    expect(formatError({ code: 'EINVAL', message: 'bad size' })).toBe('EINVAL: bad size');
  });
});
