/**
 * HelperClient: the typed client of the helper protocol over an injected line
 * transport (the app's main process, the browser-mode server and the CLI each bring
 * their own socket). Request ids, a pending map, per-call timeouts, result
 * validation against the method table, and notification handlers.
 */
import type { ErrnoName } from '../abi/errno.js';
import { ERRNO } from '../abi/errno.js';
import type { ErrorCode, RequestId } from './messages.js';
import { ErrorBodySchema, NotificationSchema, RequestIdSchema, describeIssues, encodeMessage } from './messages.js';
import { methods, notifications } from './methods.js';
import type { MethodName, MethodParams, MethodResult, NotificationName, NotificationParams } from './methods.js';
import { PROTOCOL_VERSION } from './limits.js';

/** A line-oriented connection: one JSON message per line, without the newline. */
export interface LineTransport {
  write(line: string): void;
  onLine(cb: (line: string) => void): void;
  onClose(cb: (error?: Error) => void): void;
  /** Optional: closes the connection. */
  close?(): void;
}

/** A failed call: the protocol error code, the errno name and the helper's plain message. */
export class HelperCallError extends Error {
  readonly code: ErrorCode | 'timeout' | 'closed' | 'bad_response';
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

export class HelperClient {
  private nextId = 1;
  private readonly pending = new Map<RequestId, Pending>();
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
          reject(new HelperCallError('timeout', 'ETIMEDOUT', `the helper did not answer ${method} within ${timeoutMs} ms`));
        }, Math.min(timeoutMs, MAX_TIMER_MS));
      }
      this.pending.set(id, entry);
      try {
        this.transport.write(encodeMessage({ id, method, params }));
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

  close(): void {
    this.transport.close?.();
    this.handleClose();
  }

  private settle(id: RequestId): Pending | undefined {
    const entry = this.pending.get(id);
    if (!entry) return undefined;
    this.pending.delete(id);
    if (entry.timer) clearTimeout(entry.timer);
    return entry;
  }

  private receive(line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      return; // not ours to answer; a helper never sends invalid JSON
    }
    if (typeof message !== 'object' || message === null) return;
    const obj = message as Record<string, unknown>;
    if ('id' in obj && obj.id !== null) {
      const id = RequestIdSchema.safeParse(obj.id);
      if (!id.success) return;
      const entry = this.settle(id.data);
      if (!entry) return;
      if ('error' in obj) {
        const body = ErrorBodySchema.safeParse(obj.error);
        if (!body.success) {
          entry.reject(new HelperCallError('bad_response', 'EIO', `malformed error from the helper for ${entry.method}`));
          return;
        }
        entry.reject(new HelperCallError(body.data.code, body.data.errno ?? 'EIO', body.data.message));
        return;
      }
      const parsed = methods[entry.method].result.safeParse(obj.result);
      if (!parsed.success) {
        entry.reject(new HelperCallError('bad_response', 'EIO', `malformed ${entry.method} result from the helper: ${describeIssues(parsed.error)}`));
        return;
      }
      entry.resolve(parsed.data);
      return;
    }
    if ('id' in obj) return; // an error about a request we cannot match (e.g. unparseable)
    const note = NotificationSchema.safeParse(message);
    if (!note.success) return;
    const name = note.data.method;
    if (!Object.prototype.hasOwnProperty.call(notifications, name)) return;
    const schema = notifications[name as NotificationName];
    const params = schema.safeParse(note.data.params);
    if (!params.success) return;
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

  private handleClose(error?: Error): void {
    if (this.closedError) return;
    this.closedError = new HelperCallError(
      'closed',
      'EIO',
      error ? `the connection to the helper closed: ${error.message}` : 'the connection to the helper closed',
    );
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(this.closedError);
    for (const handler of this.closeHandlers) handler(this.closedError);
    this.closeHandlers.clear();
  }
}
