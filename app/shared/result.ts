/**
 * Results and errors as data: every request of the contract resolves (never rejects)
 * with a Result. Errors carry one code from ErrorCode, a plain message for the user
 * and, optionally, a technical detail.
 */

/**
 * Errno names, mirroring engine/abi/errno.ts (app/shared must not import the engine;
 * a test keeps the two lists equal). A driver error crosses every boundary as its name.
 */
export const ERRNO_CODES = [
  'EPERM',
  'ENOENT',
  'ESRCH',
  'EINTR',
  'EIO',
  'ENXIO',
  'E2BIG',
  'EBADF',
  'EAGAIN',
  'ENOMEM',
  'EACCES',
  'EFAULT',
  'EBUSY',
  'EEXIST',
  'ENODEV',
  'ENOTDIR',
  'EISDIR',
  'EINVAL',
  'ENOTTY',
  'EFBIG',
  'ENOSPC',
  'EROFS',
  'ERANGE',
  'ENAMETOOLONG',
  'ENOSYS',
  'ENODATA',
  'EPROTO',
  'ELOOP',
  'EOPNOTSUPP',
  'ETIMEDOUT',
  'EALREADY',
  'ECANCELED',
] as const;

/** Codes that are not errnos: where the failure is in the plumbing, not in the driver. */
export const APP_ERROR_CODES = [
  /** The privileged helper is not running (not started, refused by polkit, crashed at start). */
  'HELPER_UNAVAILABLE',
  /** The helper exited or its pipe closed while a request was in flight. */
  'HELPER_LOST',
  /** A malformed message crossed a boundary (bad params, unknown method, invalid JSON). */
  'PROTOCOL',
  /** Browser mode: a missing or wrong token. */
  'UNAUTHORIZED',
  /** Anything else: a bug. The detail says more. */
  'INTERNAL',
] as const;

export type ErrnoCode = (typeof ERRNO_CODES)[number];
export type AppErrorCode = (typeof APP_ERROR_CODES)[number];
/** The one union of error codes of the contract. */
export type ErrorCode = ErrnoCode | AppErrorCode;

export const ERROR_CODES: readonly ErrorCode[] = [...ERRNO_CODES, ...APP_ERROR_CODES];

const ERROR_CODE_SET: ReadonlySet<string> = new Set(ERROR_CODES);

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && ERROR_CODE_SET.has(value);
}

export interface ContractError {
  code: ErrorCode;
  /** A plain sentence for the user ("The device is in a snapshot."). */
  message: string;
  /** Technical detail (errno number, stack, helper stderr), for a details toggle or logs. */
  detail?: string;
}

export type Ok<T> = { ok: true; value: T };
export type Err = { ok: false; error: ContractError };
export type Result<T> = Ok<T> | Err;

export function ok<T>(value: T): Ok<T> {
  return { ok: true, value };
}

export function err(code: ErrorCode, message: string, detail?: string): Err {
  const error: ContractError = { code, message };
  if (detail !== undefined) error.detail = detail;
  return { ok: false, error };
}

/** The value, or throws a ContractFailure (for callers that prefer exceptions). */
export function unwrap<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  throw new ContractFailure(result.error);
}

/** A thrown form of ContractError, for code that wants try/catch over Results. */
export class ContractFailure extends Error {
  readonly code: ErrorCode;
  readonly detail: string | undefined;

  constructor(error: ContractError) {
    super(`${error.code}: ${error.message}`);
    this.name = 'ContractFailure';
    this.code = error.code;
    this.detail = error.detail;
  }
}

/**
 * Turns anything thrown into a ContractError without relying on its class (errors
 * rarely survive IPC intact): an object with a known `code` or `errno` name keeps it,
 * everything else becomes INTERNAL.
 */
export function toContractError(thrown: unknown, fallback: ErrorCode = 'INTERNAL'): ContractError {
  if (typeof thrown === 'object' && thrown !== null) {
    const record = thrown as Record<string, unknown>;
    const code = isErrorCode(record['code']) ? record['code'] : isErrorCode(record['errno']) ? record['errno'] : undefined;
    const rawMessage = typeof record['message'] === 'string' ? record['message'] : String(thrown);
    if (code !== undefined) {
      // "EBUSY: the device is in a snapshot" -> "the device is in a snapshot"
      const prefix = `${code}: `;
      const message = rawMessage.startsWith(prefix) ? rawMessage.slice(prefix.length) : rawMessage;
      return { code, message };
    }
    return { code: fallback, message: rawMessage };
  }
  return { code: fallback, message: String(thrown) };
}

/** A one-line text for a ContractError ("EBUSY: The device is in a snapshot."). */
export function formatError(error: ContractError): string {
  return `${error.code}: ${error.message}`;
}
