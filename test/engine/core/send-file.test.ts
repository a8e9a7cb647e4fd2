/**
 * The system calls behind READ replies sent by reference: cachestat(2) telling
 * what is cached, sendfile(2) and send(2) on a non-blocking socket taking what
 * fits and no more.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { allCached, raiseSendBuffer, sendFileAvailable, sendFileNow, sendNow } from '../../../engine/core/send-file.js';
import { dropFromPageCache } from '../../helpers/page-cache.js';
import { socketPair } from '../../helpers/socket-pair.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const available = sendFileAvailable();

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'send-file-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function collect(socket: Socket, bytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  return new Promise((resolve) => {
    socket.on('data', (d: Buffer) => {
      parts.push(d);
      got += d.length;
      if (got >= bytes) resolve(Buffer.concat(parts));
    });
  });
}

describe.skipIf(!available)('send-file (Linux x86-64 with cachestat)', () => {
  it('allCached: false for a range never read or written, true once written, false again after the pages are dropped', async () => {
    const path = join(dir, 'f.img');
    await writeFile(path, '');
    await truncate(path, 4 * MiB);
    const fd = openSync(path, 'r+');
    try {
      expect(allCached(fd, MiB, MiB)).toBe(false);
      writeSync(fd, randomBytes(MiB), 0, MiB, MiB);
      expect(allCached(fd, MiB, MiB)).toBe(true);
      // One page more than what was written is not all cached.
      expect(allCached(fd, MiB, MiB + 4 * KiB)).toBe(false);
      dropFromPageCache(path);
      expect(allCached(fd, MiB, MiB)).toBe(false);
      readSync(fd, Buffer.alloc(MiB), 0, MiB, MiB);
      expect(allCached(fd, MiB, MiB)).toBe(true);
      // Unaligned ranges count the pages they touch.
      expect(allCached(fd, MiB + 100, 8000)).toBe(true);
      expect(allCached(fd, 2 * MiB - 100, 200)).toBe(false);
    } finally {
      closeSync(fd);
    }
  });

  it('sendNow + sendFileNow put the header and the file range on the socket in order, byte for byte', async () => {
    const path = join(dir, 'f.img');
    const data = randomBytes(2 * MiB);
    await writeFile(path, data);
    const pair = await socketPair(dir);
    const fd = openSync(path, 'r');
    try {
      expect(raiseSendBuffer(pair.fd, 4 * MiB)).toBe(true);
      const received = collect(pair.client, 16 + MiB);
      const head = Buffer.from('0123456789abcdef');
      expect(sendNow(pair.fd, head, head.length)).toBe(16);
      let sent = 0;
      while (sent < MiB) {
        const n = sendFileNow(pair.fd, fd, 512 * KiB + sent, MiB - sent);
        if (n === 0) await new Promise((r) => setTimeout(r, 5));
        sent += n;
      }
      const got = await received;
      expect(got.subarray(0, 16).equals(head)).toBe(true);
      expect(got.subarray(16).equals(data.subarray(512 * KiB, 512 * KiB + MiB))).toBe(true);
    } finally {
      closeSync(fd);
      pair.close();
    }
  });

  it('sendFileNow never waits: with nobody reading it stops at what the socket holds and says how much', async () => {
    const path = join(dir, 'f.img');
    await writeFile(path, randomBytes(32 * MiB));
    const pair = await socketPair(dir);
    pair.client.pause();
    const fd = openSync(path, 'r');
    try {
      let total = 0;
      let calls = 0;
      for (;;) {
        const n = sendFileNow(pair.fd, fd, total, 32 * MiB - total);
        calls++;
        if (n === 0) break;
        total += n;
        expect(calls).toBeLessThan(1000);
      }
      // The socket took some and then refused without blocking this test.
      expect(total).toBeGreaterThan(0);
      expect(total).toBeLessThan(32 * MiB);
      expect(sendNow(pair.fd, Buffer.alloc(16), 16)).toBe(0);
    } finally {
      closeSync(fd);
      pair.close();
    }
  });
});
