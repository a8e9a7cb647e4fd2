/**
 * The envelopes of the helper protocol: newline-delimited JSON, one message per line.
 *   request       {"id": 1, "method": "cbtInfo", "params": {...}}
 *   response      {"id": 1, "result": {...}}  or  {"id": 1, "error": {"code", "message", "errno"?}}
 *   notification  {"method": "event", "params": {...}}   (helper -> subscribed clients)
 */
import { z } from 'zod';
import { ErrnoNameSchema } from './schemas.js';
import type { ErrnoName } from '../abi/errno.js';
import { MAX_LINE_LENGTH } from './limits.js';

export const RequestIdSchema = z.union([z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), z.string().min(1).max(64)]);
export type RequestId = z.infer<typeof RequestIdSchema>;

/** Protocol-level error codes; `errno` carries the errno name for driver errors (code "errno"). */
export const ErrorCodeSchema = z.enum([
  'parse_error',
  'invalid_request',
  'unknown_method',
  'invalid_params',
  'too_large',
  'errno',
  'internal',
  'shutting_down',
]);
export type ErrorCode = z.infer<typeof ErrorCodeSchema>;

export const ErrorBodySchema = z.strictObject({
  code: ErrorCodeSchema,
  message: z.string(),
  errno: ErrnoNameSchema.optional(),
});
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

export const RequestSchema = z.strictObject({
  id: RequestIdSchema,
  method: z.string().min(1).max(100),
  params: z.unknown().optional(),
});
export type Request = z.infer<typeof RequestSchema>;

export const ResponseSchema = z.union([
  z.strictObject({ id: RequestIdSchema.nullable(), result: z.unknown() }),
  z.strictObject({ id: RequestIdSchema.nullable(), error: ErrorBodySchema }),
]);
export type Response = z.infer<typeof ResponseSchema>;

export const NotificationSchema = z.strictObject({ method: z.string().min(1), params: z.unknown() });
export type Notification = z.infer<typeof NotificationSchema>;

/** The errno a protocol error maps to, so every failure has an errno name for tools. */
export const ERRNO_OF_CODE: Record<Exclude<ErrorCode, 'errno'>, ErrnoName> = {
  parse_error: 'EINVAL',
  invalid_request: 'EINVAL',
  unknown_method: 'ENOSYS',
  invalid_params: 'EINVAL',
  too_large: 'E2BIG',
  internal: 'EIO',
  shutting_down: 'ECANCELED',
};

export function errorBody(code: ErrorCode, message: string, errno?: ErrnoName): ErrorBody {
  const name = errno ?? (code === 'errno' ? 'EIO' : ERRNO_OF_CODE[code]);
  return { code, message, errno: name };
}

/** One line of JSON (no newline inside: JSON.stringify never emits one). */
export function encodeMessage(message: Request | Response | Notification): string {
  return JSON.stringify(message);
}

/** "path.to.field: problem; ..." for a zod error, short enough for one line of a tool. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.map(String).join('.') : '(params)';
      return `${where}: ${issue.message}`;
    })
    .join('; ');
}

/**
 * Splits a character stream into lines, enforcing MAX_LINE_LENGTH: an overlong line
 * is reported once through onOversized and its remainder discarded up to the next
 * newline, so the stream stays usable.
 */
export class LineSplitter {
  private pending = '';
  private discarding = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onOversized: (length: number) => void,
    private readonly maxLength: number = MAX_LINE_LENGTH,
  ) {}

  push(chunk: string): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf('\n', start);
      if (nl < 0) break;
      const piece = chunk.slice(start, nl);
      start = nl + 1;
      if (this.discarding) {
        this.discarding = false;
        this.pending = '';
        continue;
      }
      const line = this.pending + piece;
      this.pending = '';
      if (line.length > this.maxLength) {
        this.onOversized(line.length);
        continue;
      }
      const trimmed = line.endsWith('\r') ? line.slice(0, -1) : line;
      if (trimmed.trim().length > 0) this.onLine(trimmed);
    }
    if (start < chunk.length && !this.discarding) {
      this.pending += chunk.slice(start);
      if (this.pending.length > this.maxLength) {
        this.onOversized(this.pending.length);
        this.pending = '';
        this.discarding = true;
      }
    }
  }
}
