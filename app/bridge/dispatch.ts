/**
 * One contract request from an untrusted edge (Electron IPC from the sandboxed page,
 * a WebSocket frame in browser mode): the params are validated (app/shared
 * validateParams) before the API sees them, and the answer is always a Result.
 */
import type { BlksnapApi, RequestName } from '../shared/contract.js';
import { isRequestName } from '../shared/contract.js';
import { err } from '../shared/result.js';
import type { Result } from '../shared/result.js';
import { validateParams } from '../shared/validate.js';
import { errResult } from './errors.js';

export async function dispatchRequest(api: BlksnapApi, method: unknown, params: unknown): Promise<Result<unknown>> {
  if (!isRequestName(method)) return err('PROTOCOL', 'Unknown request.', `method ${JSON.stringify(method)}`);
  const checked = validateParams(method, params);
  if (!checked.ok) return checked;
  const fn = api[method as RequestName] as (p?: unknown) => Promise<Result<unknown>>;
  try {
    return await fn(checked.value);
  } catch (error) {
    // the bridge never rejects; another BlksnapApi might
    return errResult(error);
  }
}
