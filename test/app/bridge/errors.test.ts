import { describe, expect, it } from 'vitest';
import { BridgeError, contractErrorOf, sentence } from '../../../app/bridge/errors.js';
import { errnoNameOf } from '../../../app/bridge/errno-names.js';
import { ConnectError } from '../../../app/bridge/socket-transport.js';
import { HelperCallError } from '../../../engine/protocol/client.js';
import { ERRNO } from '../../../engine/abi/errno.js';
import { ERRNO_CODES } from '../../../app/shared/result.js';

describe('helper errors as contract errors', () => {
  it('keeps errno names of driver errors, with a plain sentence', () => {
    expect(contractErrorOf(new HelperCallError('errno', 'EBUSY', 'device disk1 is already in snapshot x'))).toMatchObject({
      code: 'EBUSY',
      message: 'Device disk1 is already in snapshot x.',
    });
  });

  it('maps the plumbing: closed -> HELPER_LOST, timeout -> ETIMEDOUT, bad traffic -> PROTOCOL, unknown method -> ENOSYS', () => {
    expect(contractErrorOf(new HelperCallError('closed', 'EIO', 'the connection to the helper closed')).code).toBe('HELPER_LOST');
    expect(contractErrorOf(new HelperCallError('timeout', 'ETIMEDOUT', 'no answer')).code).toBe('ETIMEDOUT');
    expect(contractErrorOf(new HelperCallError('bad_response', 'EIO', 'malformed')).code).toBe('PROTOCOL');
    expect(contractErrorOf(new HelperCallError('protocol_violation', 'EPROTO', 'helper protocol violation: invalid JSON'))).toMatchObject({
      code: 'PROTOCOL',
      message: 'The helper sent a message this app cannot read; the connection was closed.',
      detail: 'helper protocol violation: invalid JSON',
    });
    expect(contractErrorOf(new HelperCallError('invalid_params', 'EINVAL', 'bad')).code).toBe('EINVAL');
    expect(contractErrorOf(new HelperCallError('unknown_method', 'ENOSYS', 'unknown method "x"')).code).toBe('ENOSYS');
    expect(contractErrorOf(new HelperCallError('internal', 'EIO', 'bug')).code).toBe('INTERNAL');
    expect(contractErrorOf(new ConnectError('ECONNREFUSED', 'refused')).code).toBe('HELPER_UNAVAILABLE');
    expect(contractErrorOf(new BridgeError('HELPER_LOST', 'Gone.')).message).toBe('Gone.');
    expect(contractErrorOf(new Error('boom')).code).toBe('INTERNAL');
  });

  it('names errno numbers like the engine does', () => {
    for (const name of ERRNO_CODES) expect(errnoNameOf(-ERRNO[name])).toBe(name);
    expect(errnoNameOf(0)).toBe('');
    expect(errnoNameOf(-999)).toBe('E999');
    expect(sentence('  ')).toBe('Unknown error.');
  });
});
