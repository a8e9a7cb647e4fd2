/**
 * HelperClient: the typed client of the helper protocol over an injected line
 * transport (the app's main process, the browser-mode server and the CLI each bring
 * their own socket). Request ids, a pending map, per-call timeouts, result
 * validation against the method table, and notification handlers.
 *
 * A line the helper must never send (invalid JSON, not a response or notification,
 * an answer to an id this client never used, an unknown or malformed notification)
 * is a protocol violation: the connection is closed and every pending call fails at
 * once with EPROTO, rather than each waiting for its timeout.
 */
import type { ErrnoName } from '../abi/errno.js';
import { ERRNO } from '../abi/errno.js';
import type { ErrorCode, RequestId } from './messages.js';
import { NotificationSchema, ResponseSchema, describeIssues, encodeMessage } from './messages.js';
import { methods, notifications } from './methods.js';
import type { MethodName, MethodParams, MethodResult, NotificationName, NotificationParams } from './methods.js';
import { MAX_LINE_LENGTH, PROTOCOL_VERSION } from './limits.js';

/** A line-oriented connection: one JSON message per line, without the newline. */
export interface LineTransport {
  write(line: string): void;
  onLine(cb: (line: string) => void): void;
  onClose(cb: (error?: Error) => void): void;
  /** Optional: closes the connection. */
  close?(): void;
}

/**
 * What a transport closes the connection with when the helper broke the framing (a
 * line over MAX_LINE_LENGTH): the client fails every call with EPROTO, as for any
 * other protocol violation.
 */
export class ProtocolViolation extends Error {
  constructor(what: string) {
    super(what);
    this.name = 'ProtocolViolation';
  }
}

/**
 * A failed call: the protocol error code, the errno name and the helper's plain message.
 * Local codes: `timeout` (ETIMEDOUT), `closed` (the connection ended), `bad_response`
 * (a result that does not match the method table), `protocol_violation` (EPROTO: a
 * line the helper must never send; the connection is closed).
 */
export class HelperCallError extends Error {
  readonly code: ErrorCode | 'timeout' | 'closed' | 'bad_response' | 'protocol_violation';
  readonly errno: ErrnoName;
  readonly errnoNumber: number;

  constructor(code: HelperCallError['code'], errno: ErrnoName, message: string) {
    super(message);
    this.name = 'HelperCallError';
    this.code = code;
    this.errno = errno;
    this.errnoNumber = ERRNO[errno];
  }
}

export interface CallOptions {
  /** Milliseconds before the call fails with ETIMEDOUT (default: the client's). */
  timeoutMs?: number;
}

interface Pending {
  method: MethodName;
  resolve: (value: unknown) => void;
  reject: (error: HelperCallError) => void;
  timer: ReturnType<typeof setTimeout> | null;
}

type AnyHandler = (params: unknown) => void;

/** The longest delay a timer holds (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Ids of timed-out calls remembered so that their late answers are not violations. */
const MAX_ABANDONED_IDS = 4096;

export class HelperClient {
  private nextId = 1;
  private readonly pending = new Map<RequestId, Pending>();
  private readonly abandoned = new Set<RequestId>();
  private readonly handlers = new Map<NotificationName, Set<AnyHandler>>();
  private closedError: HelperCallError | null = null;
  private readonly closeHandlers = new Set<(error: HelperCallError) => void>();
  private readonly defaultTimeoutMs: number;

  constructor(
    private readonly transport: LineTransport,
    options: { timeoutMs?: number } = {},
  ) {
    this.defaultTimeoutMs = options.timeoutMs ?? 30_000;
    transport.onLine((line) => this.receive(line));
    transport.onClose((error) => this.handleClose(error));
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  /** Calls a method; resolves with its validated result or rejects with a HelperCallError. */
  call<M extends MethodName>(method: M, params: MethodParams<M>, options: CallOptions = {}): Promise<MethodResult<M>> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const line = encodeMessage({ id, method, params });
    if (line.length > MAX_LINE_LENGTH) {
      return Promise.reject(
        new HelperCallError('too_large', 'E2BIG', `${method} request of ${line.length} characters is larger than the ${MAX_LINE_LENGTH}-character line limit; not sent`),
      );
    }
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    return new Promise<MethodResult<M>>((resolve, reject) => {
      const entry: Pending = {
        method,
        resolve: resolve as (value: unknown) => void,
        reject,
        timer: null,
      };
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        // a longer delay would not fit a timer (it would fire at once): wait the longest one can
        entry.timer = setTimeout(() => {
          this.pending.delete(id);
          this.abandon(id);
          reject(new HelperCallError('timeout', 'ETIMEDOUT', `the helper did not answer ${method} within ${timeoutMs} ms`));
        }, Math.min(timeoutMs, MAX_TIMER_MS));
      }
      this.pending.set(id, entry);
      try {
        this.transport.write(line);
      } catch (err) {
        this.settle(id);
        reject(new HelperCallError('closed', 'EIO', `cannot send to the helper: ${(err as Error).message}`));
      }
    });
  }

  /** hello with this protocol version; rejects when the helper speaks another version. */
  async hello(client?: string): Promise<MethodResult<'hello'>> {
    const result = await this.call('hello', client === undefined ? { protocolVersion: PROTOCOL_VERSION } : { protocolVersion: PROTOCOL_VERSION, client });
    if (result.protocolVersion !== PROTOCOL_VERSION) {
      throw new HelperCallError('bad_response', 'EINVAL', `the helper speaks protocol ${result.protocolVersion}, this client ${PROTOCOL_VERSION}`);
    }
    return result;
  }

  /** Registers a notification handler; returns a function that removes it. */
  on<N extends NotificationName>(name: N, handler: (params: NotificationParams<N>) => void): () => void {
    let set = this.handlers.get(name);
    if (!set) {
      set = new Set();
      this.handlers.set(name, set);
    }
    const h = handler as AnyHandler;
    set.add(h);
    return () => set.delete(h);
  }

  /** Called once when the connection closes (or at once if it already has). */
  onClose(handler: (error: HelperCallError) => void): () => void {
    if (this.closedError) handler(this.closedError);
    else this.closeHandlers.add(handler);
    return () => this.closeHandlers.delete(handler);
  }

  /** Closes the connection; pending and later calls fail with `closed`. */
  close(): void {
    this.handleClose();
  }

  private settle(id: RequestId): Pending | undefined {
    const entry = this.pending.get(id);
    if (!entry) return undefined;
    this.pending.delete(id);
    if (entry.timer) clearTimeout(entry.timer);
    return entry;
  }

  /** A timed-out call's id: its answer may still come and is then dropped quietly. */
  private abandon(id: RequestId): void {
    this.abandoned.add(id);
    if (this.abandoned.size > MAX_ABANDONED_IDS) {
      const oldest = this.abandoned.values().next();
      if (!oldest.done) this.abandoned.delete(oldest.value);
    }
  }

  private receive(line: string): void {
    if (this.closedError) return; // the rest of a chunk after a violation or a close
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch (err) {
      this.violation(`invalid JSON (${(err as Error).message}): ${preview(line)}`);
      return;
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      this.violation(`a message that is not a JSON object: ${preview(line)}`);
      return;
    }
    if ('id' in message) this.receiveResponse(message, line);
    else this.receiveNotification(message, line);
  }

  private receiveResponse(message: object, line: string): void {
    const response = ResponseSchema.safeParse(message);
    if (!response.success) {
      this.violation(`malformed response (${describeIssues(response.error)}): ${preview(line)}`);
      return;
    }
    const { id } = response.data;
    if (id === null) {
      // the helper could not read a line of ours: no call can be matched, so none would ever be answered
      if ('error' in response.data) {
        const body = response.data.error;
        this.fail(new HelperCallError(body.code, body.errno ?? 'EIO', `the helper refused this connection's request: ${body.message}`));
      } else {
        this.violation(`a result without a request id: ${preview(line)}`);
      }
      return;
    }
    const entry = this.settle(id);
    if (!entry) {
      if (this.abandoned.delete(id)) return; // the late answer of a call that timed out
      this.violation(`an answer to request id ${JSON.stringify(id)}, which this client has not sent or has had answered`);
      return;
    }
    if ('error' in response.data) {
      const body = response.data.error;
      entry.reject(new HelperCallError(body.code, body.errno ?? 'EIO', body.message));
      return;
    }
    const parsed = methods[entry.method].result.safeParse(response.data.result);
    if (!parsed.success) {
      entry.reject(new HelperCallError('bad_response', 'EIO', `malformed ${entry.method} result from the helper: ${describeIssues(parsed.error)}`));
      return;
    }
    entry.resolve(parsed.data);
  }

  private receiveNotification(message: object, line: string): void {
    const note = NotificationSchema.safeParse(message);
    if (!note.success) {
      this.violation(`neither a response nor a notification (${describeIssues(note.error)}): ${preview(line)}`);
      return;
    }
    const name = note.data.method;
    if (!Object.prototype.hasOwnProperty.call(notifications, name)) {
      this.violation(`unknown notification ${preview(name)}`);
      return;
    }
    const params = notifications[name as NotificationName].safeParse(note.data.params);
    if (!params.success) {
      this.violation(`malformed ${name} notification: ${describeIssues(params.error)}`);
      return;
    }
    const set = this.handlers.get(name as NotificationName);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(params.data);
      } catch {
        // a handler's failure is the handler's business
      }
    }
  }

  /** A line the helper must never send: close the connection, fail every call now. */
  private violation(what: string): void {
    this.fail(new HelperCallError('protocol_violation', 'EPROTO', `helper protocol violation: ${what}`));
  }

  /** Ends the connection with `error`: pending and later calls reject with it. */
  private fail(error: HelperCallError): void {
    if (this.closedError) return;
    this.closedError = error;
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(error);
    this.abandoned.clear();
    for (const handler of this.closeHandlers) handler(error);
    this.closeHandlers.clear();
    try {
      this.transport.close?.();
    } catch {
      // already closed
    }
  }

  private handleClose(error?: Error): void {
    if (error instanceof ProtocolViolation) {
      this.violation(error.message);
      return;
    }
    this.fail(
      new HelperCallError(
        'closed',
        'EIO',
        error ? `the connection to the helper closed: ${error.message}` : 'the connection to the helper closed',
      ),
    );
  }
}

/** The start of an offending line, for the message (a violation may be megabytes long). */
function preview(text: string): string {
  return text.length > 120 ? `${JSON.stringify(text.slice(0, 120))}... (${text.length} characters)` : JSON.stringify(text);
}
