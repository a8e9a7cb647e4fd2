/**
 * Helper failures as contract errors: a HelperCallError (engine/protocol) keeps its
 * errno name; a closed connection is HELPER_LOST; a helper that cannot be reached is
 * HELPER_UNAVAILABLE; malformed traffic is PROTOCOL. Messages are plain sentences.
 */
import { HelperCallError } from '../../engine/protocol/client.js';
import { err, isErrorCode } from '../shared/result.js';
import type { ContractError, Err, ErrorCode } from '../shared/result.js';
import { ConnectError } from './socket-transport.js';

/** "the device is busy" -> "The device is busy." */
export function sentence(text: string): string {
  const trimmed = text.trim();
  if (trimmed.length === 0) return 'Unknown error.';
  const first = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

/** A thrown value from a bridge operation as a ContractError. */
export function contractErrorOf(thrown: unknown): ContractError {
  if (thrown instanceof BridgeError) return thrown.error;
  if (thrown instanceof HelperCallError) {
    const detail = `helper error ${thrown.code} (${thrown.errno})`;
    switch (thrown.code) {
      case 'closed':
        return { code: 'HELPER_LOST', message: 'The helper stopped while the request was running.', detail: thrown.message };
      case 'timeout':
        return { code: 'ETIMEDOUT', message: sentence(thrown.message), detail };
      case 'protocol_violation':
        return { code: 'PROTOCOL', message: 'The helper sent a message this app cannot read; the connection was closed.', detail: thrown.message };
      case 'bad_response':
      case 'parse_error':
      case 'invalid_request':
        return { code: 'PROTOCOL', message: sentence(thrown.message), detail };
      case 'unknown_method':
        return { code: 'ENOSYS', message: 'The running helper does not support this operation (is it older than the app?).', detail: thrown.message };
      case 'internal':
        return { code: 'INTERNAL', message: sentence(thrown.message), detail };
      case 'shutting_down':
        return { code: 'HELPER_LOST', message: 'The helper is shutting down.', detail };
      default: {
        const code: ErrorCode = isErrorCode(thrown.errno) ? thrown.errno : 'EIO';
        return { code, message: sentence(thrown.message), detail };
      }
    }
  }
  if (thrown instanceof ConnectError) {
    return { code: 'HELPER_UNAVAILABLE', message: 'The helper is not running.', detail: thrown.message };
  }
  if (typeof thrown === 'object' && thrown !== null) {
    const record = thrown as { code?: unknown; message?: unknown };
    if (isErrorCode(record.code)) {
      return { code: record.code, message: sentence(typeof record.message === 'string' ? record.message : String(record.code)) };
    }
    const message = typeof record.message === 'string' ? record.message : String(thrown);
    return { code: 'INTERNAL', message: sentence(message) };
  }
  return { code: 'INTERNAL', message: sentence(String(thrown)) };
}

/** A ContractError to throw inside the bridge (turned back into a Result at the edge). */
export class BridgeError extends Error {
  readonly error: ContractError;

  constructor(code: ErrorCode, message: string, detail?: string) {
    super(message);
    this.name = 'BridgeError';
    this.error = detail === undefined ? { code, message } : { code, message, detail };
  }
}

export function errResult(thrown: unknown): Err {
  const e = contractErrorOf(thrown);
  return err(e.code, e.message, e.detail);
}
