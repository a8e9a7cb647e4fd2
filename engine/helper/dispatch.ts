/**
 * One request line in, one response out: JSON parsing, the envelope, the method
 * table's params schema, the handler, and the result schema (a helper bug becomes an
 * "internal" error rather than a malformed answer). Never throws.
 */
import { isBlksnapError, isErrnoName } from '../abi/errno.js';
import { RequestSchema, describeIssues, errorBody } from '../protocol/messages.js';
import type { RequestId, Response } from '../protocol/messages.js';
import { isMethodName, methods } from '../protocol/methods.js';
import type { MethodName } from '../protocol/methods.js';
import { errnoOf } from './fs-errors.js';
import type { ClientContext, HelperService } from './service.js';

function idOf(value: unknown): RequestId | null {
  if (typeof value === 'object' && value !== null && 'id' in value) {
    const id = (value as { id: unknown }).id;
    if ((typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) || (typeof id === 'string' && id.length > 0 && id.length <= 64)) {
      return id;
    }
  }
  return null;
}

export function errorResponse(id: RequestId | null, err: unknown): Response {
  if (isBlksnapError(err)) {
    const prefix = `${err.errno}: `;
    const message = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
    return { id, error: errorBody('errno', message, err.errno) };
  }
  const code = errnoOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (isErrnoName(code)) return { id, error: errorBody('errno', message, code) };
  return { id, error: errorBody('internal', `internal helper error: ${message}`) };
}

export async function dispatchLine(
  line: string,
  service: HelperService,
  ctx: ClientContext,
  state: { shuttingDown: boolean },
): Promise<Response> {
  let message: unknown;
  try {
    message = JSON.parse(line);
  } catch (err) {
    return { id: null, error: errorBody('parse_error', `invalid JSON: ${(err as Error).message}`) };
  }
  const envelope = RequestSchema.safeParse(message);
  if (!envelope.success) {
    return { id: idOf(message), error: errorBody('invalid_request', `not a request ({id, method, params}): ${describeIssues(envelope.error)}`) };
  }
  const { id, method } = envelope.data;
  if (!isMethodName(method)) return { id, error: errorBody('unknown_method', `unknown method "${method}"`) };
  if (state.shuttingDown) return { id, error: errorBody('shutting_down', 'the helper is shutting down') };
  const spec = methods[method];
  const params = spec.params.safeParse(envelope.data.params ?? {});
  if (!params.success) {
    return { id, error: errorBody('invalid_params', `invalid parameters for ${method}: ${describeIssues(params.error)}`) };
  }
  try {
    const handler = service.handlers[method] as (p: unknown, c: ClientContext) => Promise<unknown>;
    const result = await handler(params.data, ctx);
    const checked = (spec.result as (typeof methods)[MethodName]['result']).safeParse(result);
    if (!checked.success) {
      return { id, error: errorBody('internal', `internal helper error: bad ${method} result: ${describeIssues(checked.error)}`) };
    }
    return { id, result: checked.data };
  } catch (err) {
    return errorResponse(id, err);
  }
}
