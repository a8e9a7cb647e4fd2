/** One client connection: line framing, concurrent requests, its notification subscriptions. */
import type { Socket } from 'node:net';
import { LineSplitter, RequestSchema, encodeMessage, errorBody } from '../protocol/messages.js';
import type { Notification, RequestId, Response } from '../protocol/messages.js';
import { MAX_IN_FLIGHT_PER_CLIENT, MAX_LINE_LENGTH, MAX_QUEUED_OUTPUT_BYTES } from '../protocol/limits.js';
import type { Topic } from '../protocol/schemas.js';
import { dispatchLine } from './dispatch.js';
import type { ClientContext, HelperService } from './service.js';

export class ClientConnection implements ClientContext {
  readonly subscriptions = new Set<Topic>();
  private readonly closer = new AbortController();
  private readonly splitter: LineSplitter;
  private inFlight = 0;

  constructor(
    private readonly socket: Socket,
    private readonly service: HelperService,
    private readonly state: { shuttingDown: boolean },
    onClose: (conn: ClientConnection) => void,
  ) {
    this.splitter = new LineSplitter(
      (line) => this.handle(line),
      (length) =>
        this.send({
          id: null,
          error: errorBody('too_large', `message of ${length}+ characters is larger than the ${MAX_LINE_LENGTH}-character limit; ignored`),
        }),
    );
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.splitter.push(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.closer.abort();
      onClose(this);
    });
  }

  /** Aborted when the client's socket closes (its pending snapshotWaitEvent calls give up their turn). */
  get closeSignal(): AbortSignal {
    return this.closer.signal;
  }

  get busy(): boolean {
    return this.inFlight > 0;
  }

  send(message: Response | Notification): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    if (this.socket.writableLength > MAX_QUEUED_OUTPUT_BYTES) {
      // the client does not read: drop it rather than buffer without bound
      this.socket.destroy();
      return;
    }
    this.socket.write(encodeMessage(message) + '\n');
  }

  notify(topic: Topic, params: unknown): void {
    if (this.subscriptions.has(topic)) this.send({ method: topic, params });
  }

  close(): void {
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 500).unref();
  }

  private handle(line: string): void {
    if (this.inFlight >= MAX_IN_FLIGHT_PER_CLIENT) {
      let id: RequestId | null = null;
      try {
        const parsed = RequestSchema.safeParse(JSON.parse(line));
        if (parsed.success) id = parsed.data.id;
      } catch {
        id = null;
      }
      this.send({ id, error: errorBody('invalid_request', `more than ${MAX_IN_FLIGHT_PER_CLIENT} requests in flight on one connection`, 'EAGAIN') });
      return;
    }
    this.inFlight++;
    void dispatchLine(line, this.service, this, this.state).then((response) => {
      this.inFlight--;
      this.send(response);
    });
  }
}
