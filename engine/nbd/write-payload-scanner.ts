/**
 * Follows the request frames of a connection's transmission phase as the bytes
 * arrive (before they are parsed), to tell where a WRITE's payload is still
 * coming: the socket can then read it straight into a buffer of its own
 * (withReadBuffer's `route`) instead of into the shared read buffer and a copy.
 *
 * It only decides where bytes land, never what they are or in which order
 * they are read: if it ever lost its place (a malformed frame), reads would
 * merely take the slower path. On a bad magic it stops for good; the parser
 * drops such a connection anyway.
 */
import { NBD_CMD_WRITE, NBD_REQUEST_MAGIC, NBD_REQUEST_SIZE } from './constants.js';
import type { PayloadWrite, ReadRoute } from './socket-read-buffer.js';

/** The header of a WRITE whose payload is being received (WritePayloadScanner.writer). */
export interface WriteHeader {
  flags: number;
  cookieHigh: number;
  cookieLow: number;
  offset: number;
  length: number;
}

export class WritePayloadScanner implements ReadRoute {
  private active = false;
  private stopped = false;
  private readonly header = Buffer.alloc(NBD_REQUEST_SIZE);
  private headerFill = 0;
  /** Bytes of the current WRITE's payload not received yet. */
  private payloadLeft = 0;
  /** Length of the current (or last) WRITE's payload. */
  private payloadLength = 0;
  /** The current (or last) WRITE's header fields (an object is made only when asked for). */
  private writeFlags = 0;
  private cookieHigh = 0;
  private cookieLow = 0;
  private writeOffset = 0;
  /**
   * Asked where a payload still to come may be written by the thread receiving
   * it (ReadRoute.payloadWrite), with its header and the bytes of it received
   * so far; null: nowhere (the connection's transmission sets it).
   */
  writer: ((header: WriteHeader, received: number) => PayloadWrite | null) | null = null;

  /**
   * Starts following frames at the transmission phase; `unread` are the bytes
   * received and not yet parsed (they begin with a request header).
   */
  start(unread: readonly Buffer[]): void {
    if (this.active || this.stopped) return;
    this.active = true;
    for (const chunk of unread) this.scan(chunk);
  }

  received(data: Buffer): void {
    if (this.active) this.scan(data);
  }

  /** Payload bytes of the current WRITE still to come (0: none, or not following). */
  payloadBytesLeft(): number {
    return this.active ? this.payloadLeft : 0;
  }

  /** Payload bytes of the current WRITE received so far, while some are still to come (else 0). */
  payloadBytesReceived(): number {
    return this.active && this.payloadLeft > 0 ? this.payloadLength - this.payloadLeft : 0;
  }

  payloadWrite(): PayloadWrite | null {
    if (!this.active || this.payloadLeft === 0 || this.writer === null) return null;
    const header = { flags: this.writeFlags, cookieHigh: this.cookieHigh, cookieLow: this.cookieLow, offset: this.writeOffset, length: this.payloadLength };
    return this.writer(header, this.payloadLength - this.payloadLeft);
  }

  private scan(data: Buffer): void {
    let at = 0;
    while (at < data.length && this.active) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, data.length - at);
        this.payloadLeft -= n;
        at += n;
        continue;
      }
      let header: Buffer;
      let start: number;
      if (this.headerFill === 0 && data.length - at >= NBD_REQUEST_SIZE) {
        // The whole header in this piece (the usual case): read in place.
        header = data;
        start = at;
        at += NBD_REQUEST_SIZE;
      } else {
        const n = Math.min(NBD_REQUEST_SIZE - this.headerFill, data.length - at);
        data.copy(this.header, this.headerFill, at, at + n);
        this.headerFill += n;
        at += n;
        if (this.headerFill < NBD_REQUEST_SIZE) continue;
        this.headerFill = 0;
        header = this.header;
        start = 0;
      }
      if (!this.follow(header, start)) return;
    }
  }

  /** Takes in the header at header[start..]; false (and stopped) on a bad magic. */
  private follow(header: Buffer, start: number): boolean {
    if (header.readUInt32BE(start) !== NBD_REQUEST_MAGIC) {
      this.active = false;
      this.stopped = true;
      return false;
    }
    if (header.readUInt16BE(start + 6) === NBD_CMD_WRITE) {
      this.payloadLeft = header.readUInt32BE(start + 24);
      this.payloadLength = this.payloadLeft;
      this.writeFlags = header.readUInt16BE(start + 4);
      this.cookieHigh = header.readUInt32BE(start + 8);
      this.cookieLow = header.readUInt32BE(start + 12);
      // Exact below 2^53, as the transmission reads it.
      this.writeOffset = header.readUInt32BE(start + 16) * 2 ** 32 + header.readUInt32BE(start + 20);
    }
    return true;
  }
}
