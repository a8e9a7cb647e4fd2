/**
 * WritePayloadScanner: follows request frames byte by byte, however the bytes
 * are cut, and tells how much of the current WRITE's payload is still to come.
 */
import { describe, expect, it } from 'vitest';
import { NBD_CMD_READ, NBD_CMD_WRITE, NBD_REQUEST_MAGIC, NBD_REQUEST_SIZE } from '../../../engine/nbd/constants.js';
import { WritePayloadScanner } from '../../../engine/nbd/write-payload-scanner.js';

function header(type: number, length: number, magic = NBD_REQUEST_MAGIC): Buffer {
  const h = Buffer.alloc(NBD_REQUEST_SIZE);
  h.writeUInt32BE(magic, 0);
  h.writeUInt16BE(type, 6);
  h.writeUInt32BE(length, 24);
  return h;
}

/** WRITE 3000, READ 4096, WRITE 100: the payload bytes left after each byte of the stream. */
function stream(): { bytes: Buffer; leftAfter: number[] } {
  const parts = [header(NBD_CMD_WRITE, 3000), Buffer.alloc(3000, 1), header(NBD_CMD_READ, 4096), header(NBD_CMD_WRITE, 100), Buffer.alloc(100, 2)];
  const leftAfter: number[] = [];
  for (let i = 0; i < NBD_REQUEST_SIZE - 1; i++) leftAfter.push(0);
  leftAfter.push(3000);
  for (let i = 2999; i >= 0; i--) leftAfter.push(i);
  for (let i = 0; i < 2 * NBD_REQUEST_SIZE - 1; i++) leftAfter.push(0);
  leftAfter.push(100);
  for (let i = 99; i >= 0; i--) leftAfter.push(i);
  return { bytes: Buffer.concat(parts), leftAfter };
}

describe('WritePayloadScanner', () => {
  it('knows the payload left after every byte, fed one byte at a time', () => {
    const { bytes, leftAfter } = stream();
    const s = new WritePayloadScanner();
    s.start([]);
    for (let i = 0; i < bytes.length; i++) {
      s.received(bytes.subarray(i, i + 1));
      expect(s.payloadBytesLeft()).toBe(leftAfter[i]);
    }
  });

  it('knows how much of a payload still coming has arrived, and says 0 once none is still coming', () => {
    const s = new WritePayloadScanner();
    s.start([]);
    const frames = [header(NBD_CMD_WRITE, 3000), Buffer.alloc(1000, 1)];
    s.received(Buffer.concat(frames));
    expect(s.payloadBytesReceived()).toBe(1000);
    s.received(Buffer.alloc(1999, 1));
    expect(s.payloadBytesReceived()).toBe(2999);
    s.received(Buffer.alloc(1, 1));
    expect(s.payloadBytesReceived()).toBe(0);
    // A READ between WRITEs: nothing is still coming; the next WRITE counts from its own start.
    s.received(Buffer.concat([header(NBD_CMD_READ, 4096), header(NBD_CMD_WRITE, 100), Buffer.alloc(7, 2)]));
    expect(s.payloadBytesLeft()).toBe(93);
    expect(s.payloadBytesReceived()).toBe(7);
  });

  it('gives the same answers for any cut of the stream, and starts from the unread bytes', () => {
    const { bytes, leftAfter } = stream();
    for (const cut of [1, 5, 27, 28, 29, 1000, 3028, 3055, 3100]) {
      for (const first of [0, 13, 3084]) {
        const s = new WritePayloadScanner();
        // Bytes before start() are not followed; those passed to start() are.
        s.received(Buffer.from([0xff, 0xff]));
        s.start([bytes.subarray(0, first)]);
        let at = first;
        while (at < bytes.length) {
          const end = Math.min(bytes.length, at + cut);
          s.received(bytes.subarray(at, end));
          at = end;
          expect(s.payloadBytesLeft(), `cut ${cut}, start ${first}, at ${at}`).toBe(leftAfter[at - 1]);
        }
      }
    }
  });

  it('follows nothing before start() and stops for good at a bad magic', () => {
    const s = new WritePayloadScanner();
    s.received(header(NBD_CMD_WRITE, 1 << 20));
    expect(s.payloadBytesLeft()).toBe(0);
    s.start([header(NBD_CMD_READ, 512, 0x12345678)]);
    s.received(header(NBD_CMD_WRITE, 1 << 20));
    expect(s.payloadBytesLeft()).toBe(0);
  });

  it('asks its writer about a payload still coming with that WRITE\'s header (cut anywhere) and the bytes received so far', () => {
    const s = new WritePayloadScanner();
    const asked: unknown[] = [];
    s.writer = (h, received) => {
      asked.push({ ...h, received });
      return null;
    };
    s.start([]);
    expect(s.payloadWrite()).toBeNull(); // nothing coming: the writer is not asked
    const first = header(NBD_CMD_WRITE, 8192);
    first.writeUInt16BE(1, 4); // FUA
    first.writeUInt32BE(0xdeadbeef, 8);
    first.writeUInt32BE(7, 12);
    first.writeUInt32BE(3, 16); // offset 3 * 2^32 + 4096
    first.writeUInt32BE(4096, 20);
    s.received(first.subarray(0, 10));
    s.received(Buffer.concat([first.subarray(10), Buffer.alloc(1000)]));
    s.payloadWrite();
    s.received(Buffer.alloc(7192));
    expect(s.payloadWrite()).toBeNull(); // all received: nothing coming
    s.received(Buffer.concat([header(NBD_CMD_WRITE, 512), Buffer.alloc(12)]));
    s.payloadWrite();
    expect(asked).toEqual([
      { flags: 1, cookieHigh: 0xdeadbeef, cookieLow: 7, offset: 3 * 2 ** 32 + 4096, length: 8192, received: 1000 },
      { flags: 0, cookieHigh: 0, cookieLow: 0, offset: 0, length: 512, received: 12 },
    ]);
  });
});
