/**
 * READ replies sent from the page cache by reference (sendfile(2)), for the
 * transmission's large reads of a device's live bytes (BlockDevice.liveFileRange).
 * A copying reply costs two copies in the server: the page cache into the reply
 * frame, the frame into the socket. This one costs none: the socket takes the
 * cached pages themselves, and the client's read copies them once.
 *
 * The reply header goes first with send(2), then the data with sendfile(2),
 * both on the socket's descriptor, without waiting. So that nothing interleaves,
 * the caller (transmission.ts) sends directly only when Node's stream holds
 * nothing unsent, and sends whatever did not fit the usual way right after, in
 * the same turn; when the socket is full it queues the header on the stream and
 * sends the data once the header has gone, holding later replies back. The socket
 * gets a send buffer of 2 MiB: a Unix socket reports room once a quarter of its
 * buffer is in use, and then a whole 1 MiB reply fits (the kernel's default,
 * about 200 KiB, takes a quarter of one per call). What a client that does not
 * read can make the kernel hold grows with it: 2 MiB a connection (docs/nbd.md,
 * "The limits and what they bound").
 *
 * Where it works: sendFileAvailable() (engine/core/send-file.ts), Linux on
 * x86-64 with cachestat(2) (6.5+); elsewhere the transmission copies as before.
 */
import type { Server, Socket } from 'node:net';
import { allCached, raiseSendBuffer, sendFileAvailable, sendFileNow, sendNow } from '../core/send-file.js';

/** The send buffer asked for on each connection that sends by reference. */
export const FILE_REPLY_SEND_BUFFER = 2 * 1024 * 1024;

/** The internal this relies on (net.js: Socket#_handle and Server#_handle, a pipe or TCP handle with its descriptor). */
interface SocketInternals {
  _handle?: { fd?: unknown } | null;
  encrypted?: unknown;
}

/** The descriptor of a socket or a listening server, or null when it has none of its own (a TLS socket, a socket pair in tests, closed). */
export function descriptorOf(socket: Socket | Server): number | null {
  const internals = socket as unknown as SocketInternals;
  const fd = internals._handle?.fd;
  return internals.encrypted === undefined && typeof fd === 'number' && fd >= 0 ? fd : null;
}

/** READ replies sent by reference so far (a server's, over all its connections). */
export interface FileReplyCounts {
  /** Replies whose data went by reference, wholly or in part. */
  replies: number;
  /** Data bytes sent by reference. */
  bytes: number;
  /** Replies of which the socket took only a part (the rest was copied). */
  partial: number;
  /** Fast-path replies (copied frames and WRITE replies) written straight to the socket's descriptor, wholly or in part. */
  direct: number;
  /** Of those, replies the socket took only a part of (the rest went through the stream). */
  directPartial: number;
  /** WRITEs answered in place: parsed and written from the received bytes (transmission.ts, answerInPlace). */
  writesInPlace: number;
  /** READs answered in place: parsed from the received bytes, read into a reply frame sent at once. */
  readsInPlace: number;
}

export function noFileReplies(): FileReplyCounts {
  return { replies: 0, bytes: 0, partial: 0, direct: 0, directPartial: 0, writesInPlace: 0, readsInPlace: 0 };
}

/** What went out of one reply. */
export interface FileReplySent {
  /** Bytes of the header sent (0: nothing was sent, the reply is still whole). */
  head: number;
  /** Bytes of the data sent (only once the whole header went). */
  data: number;
}

export class FileReplySender {
  private constructor(
    /** The socket's descriptor. */
    readonly fd: number,
  ) {}

  /**
   * A sender for this socket, or null when its bytes cannot be sent by reference
   * (no descriptor of its own, as for a TLS socket or a socket pair in tests;
   * the system calls missing). `fileData`: the socket will carry file data by
   * reference, and gets the larger send buffer for it (FILE_REPLY_SEND_BUFFER).
   */
  static for(socket: Socket, fileData = true): FileReplySender | null {
    const fd = descriptorOf(socket);
    if (fd === null || !sendFileAvailable()) return null;
    if (fileData) raiseSendBuffer(fd, FILE_REPLY_SEND_BUFFER);
    return new FileReplySender(fd);
  }

  /**
   * Sends `buf` as far as the socket takes it now, without waiting: the bytes
   * sent (0 when the socket is full or broken; the rest goes the usual way,
   * where a broken socket is noticed). Never throws.
   */
  sendBytes(buf: Buffer): number {
    try {
      return sendNow(this.fd, buf, buf.length);
    } catch {
      return 0;
    }
  }

  /** True when [position, position+length) of `fileFd` is all cached, so sending it never waits for the disk. */
  cached(fileFd: number, position: number, length: number): boolean {
    return allCached(fileFd, position, length);
  }

  /**
   * Sends `head` and then `length` bytes of `fileFd` from `position`, as far as
   * the socket takes them without waiting. Never throws: a failure to send
   * anything is { head: 0 } (the copying path then reports the error).
   */
  send(head: Buffer, fileFd: number, position: number, length: number): FileReplySent {
    let headSent: number;
    try {
      headSent = sendNow(this.fd, head, head.length);
    } catch {
      return { head: 0, data: 0 };
    }
    if (headSent < head.length) return { head: headSent, data: 0 };
    return { head: headSent, data: this.sendData(fileFd, position, length) };
  }

  /** Sends `length` bytes of `fileFd` from `position` as far as the socket takes them now; never throws. */
  sendData(fileFd: number, position: number, length: number): number {
    try {
      return sendFileNow(this.fd, fileFd, position, length);
    } catch {
      return 0; // the rest is sent the usual way, where the broken socket is noticed
    }
  }
}
