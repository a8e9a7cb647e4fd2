/**
 * One client connection: line framing, concurrent requests, its notification
 * subscriptions. Its memory is bounded: at most MAX_LINE_LENGTH characters of an
 * unfinished line (a longer line, even one that never ends, gets a too_large error
 * and the connection is cut off), MAX_IN_FLIGHT_PER_CLIENT requests, and
 * MAX_QUEUED_OUTPUT_BYTES of unread output.
 */
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
  private cut = false;

  constructor(
    private readonly socket: Socket,
    private readonly service: HelperService,
    private readonly state: { shuttingDown: boolean },
    onClose: (conn: ClientConnection) => void,
  ) {
    this.splitter = new LineSplitter(
      (line) => this.handle(line),
      (length) => this.cutOff(length),
    );
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (!this.cut) this.splitter.push(chunk);
    });
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

  /** A line past MAX_LINE_LENGTH: say so, stop reading, and hang up (nothing more is buffered). */
  private cutOff(length: number): void {
    if (this.cut) return;
    this.cut = true;
    this.send({
      id: null,
      error: errorBody(
        'too_large',
        `a message of ${length}+ characters is longer than the ${MAX_LINE_LENGTH}-character limit of the helper protocol; closing the connection`,
      ),
    });
    this.socket.pause();
    this.close();
  }

  private handle(line: string): void {
    if (this.cut) return; // lines behind an oversized one in the same chunk
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
