import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InlineWritePolicy, readNoWait, voluntarySwitches } from '../../../engine/core/nowait-io.js';
import { tempDir } from './helpers.js';

let dir: string;
let file: string;
let fd: number;
const SIZE = 1 << 20;
/** Every byte differs from its neighbours' (a read from the wrong place shows). */
const content = Buffer.alloc(SIZE);
for (let i = 0; i < SIZE; i++) content[i] = (i * 131 + (i >> 9)) & 0xff;

beforeEach(() => {
  dir = tempDir('nowait');
  file = path.join(dir, 'img');
  fs.writeFileSync(file, content); // just written: in the page cache
  fd = fs.openSync(file, 'r+');
});

afterEach(() => {
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('readNoWait (preadv2 RWF_NOWAIT)', () => {
  it('reads cached bytes from the file offset into the buffer offset, touching nothing around them', () => {
    // A view inside a larger ArrayBuffer: the address must include the view's own offset.
    const backing = Buffer.alloc(64 * 1024, 0xee);
    const view = backing.subarray(1000, 1000 + 20_000);
    expect(readNoWait(fd, view, 512, 8192, 12_288)).toBe(true);
    expect(view.subarray(512, 512 + 8192).equals(content.subarray(12_288, 12_288 + 8192))).toBe(true);
    expect(backing.subarray(0, 1000 + 512).every((b) => b === 0xee)).toBe(true);
    expect(backing.subarray(1000 + 512 + 8192).every((b) => b === 0xee)).toBe(true);
  });

  it('reads into several buffers one after another (the address is per buffer)', () => {
    const a = Buffer.alloc(4096);
    const b = Buffer.alloc(4096);
    expect(readNoWait(fd, a, 0, 4096, 0)).toBe(true);
    expect(readNoWait(fd, b, 0, 4096, SIZE - 4096)).toBe(true);
    expect(a.equals(content.subarray(0, 4096))).toBe(true);
    expect(b.equals(content.subarray(SIZE - 4096))).toBe(true);
  });

  it('a read that cannot be had whole (past the end of the file) says false', () => {
    const buf = Buffer.alloc(8192);
    expect(readNoWait(fd, buf, 0, 8192, SIZE - 4096)).toBe(false);
  });

  it('a closed descriptor says false (the thread-pool read then reports the error)', () => {
    const other = fs.openSync(file, 'r');
    fs.closeSync(other);
    expect(readNoWait(other, Buffer.alloc(512), 0, 512, 0)).toBe(false);
  });
});

describe('InlineWritePolicy', () => {
  it('writes the bytes at the position, looping to the end', () => {
    const policy = new InlineWritePolicy();
    const data = Buffer.alloc(8192, 0x5a);
    policy.write(fd, [data], 4096);
    const back = Buffer.alloc(8192 + 1024);
    fs.readSync(fd, back, 0, back.length, 4096 - 512);
    expect(back.subarray(0, 512).equals(content.subarray(4096 - 512, 4096))).toBe(true);
    expect(back.subarray(512, 512 + 8192).every((b) => b === 0x5a)).toBe(true);
    expect(back.subarray(512 + 8192).equals(content.subarray(4096 + 8192, 4096 + 8192 + 512))).toBe(true);
  });

  it('writes several buffers back to back (one pwritev)', () => {
    const policy = new InlineWritePolicy();
    policy.write(fd, [Buffer.alloc(512, 1), Buffer.alloc(1024, 2), Buffer.alloc(512, 3)], 8192);
    const back = Buffer.alloc(2048);
    fs.readSync(fd, back, 0, 2048, 8192);
    expect(back.subarray(0, 512).every((b) => b === 1)).toBe(true);
    expect(back.subarray(512, 1536).every((b) => b === 2)).toBe(true);
    expect(back.subarray(1536).every((b) => b === 3)).toBe(true);
  });

  it('writes from views that start inside a larger buffer, one or several (each address is the view\'s own)', () => {
    const policy = new InlineWritePolicy();
    const big = Buffer.alloc(16_384);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 1) & 0xff;
    policy.write(fd, [big.subarray(100, 612)], 0);
    policy.write(fd, [big.subarray(1000, 1512), big.subarray(9000, 10_024)], 512);
    const back = Buffer.alloc(2048);
    fs.readSync(fd, back, 0, 2048, 0);
    expect(back.subarray(0, 512).equals(big.subarray(100, 612))).toBe(true);
    expect(back.subarray(512, 1024).equals(big.subarray(1000, 1512))).toBe(true);
    expect(back.subarray(1024, 2048).equals(big.subarray(9000, 10_024))).toBe(true);
  });

  it('writes more pieces than one call takes (70), all of them in order', () => {
    const policy = new InlineWritePolicy();
    const parts = Array.from({ length: 70 }, (_, i) => Buffer.alloc(512, i + 1));
    policy.write(fd, parts, 65_536);
    const back = Buffer.alloc(70 * 512);
    fs.readSync(fd, back, 0, back.length, 65_536);
    for (let i = 0; i < 70; i++) expect(back.subarray(i * 512, (i + 1) * 512).every((b) => b === i + 1), `piece ${i}`).toBe(true);
  });

  it('a failed write throws an error named by its errno, as Node\'s own do', () => {
    const policy = new InlineWritePolicy();
    const readOnly = fs.openSync(file, 'r');
    try {
      expect(() => policy.write(readOnly, [Buffer.alloc(512)], 0)).toThrow(expect.objectContaining({ code: 'EBADF' }));
      expect(() => policy.write(readOnly, [Buffer.alloc(512), Buffer.alloc(512)], 0)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    } finally {
      fs.closeSync(readOnly);
    }
  });

  it('allows writes up to maxBytes only', () => {
    const policy = new InlineWritePolicy({ maxBytes: 65_536, slowMs: 20, backoffMs: 1000 });
    expect(policy.allows(65_536)).toBe(true);
    expect(policy.allows(65_536 + 512)).toBe(false);
  });

  it('a slow inline write that slept turns inline writes off for backoffMs, then they come back', () => {
    let now = 0;
    const ticks: number[] = [];
    let switches = 10;
    const policy = new InlineWritePolicy(
      { maxBytes: 65_536, slowMs: 20, backoffMs: 1000 },
      () => ticks.shift() ?? now,
      () => switches++, // every call sees one more: the write slept
    );
    ticks.push(100, 105); // a 5 ms write: fast
    policy.write(fd, [Buffer.alloc(512)], 0);
    expect(policy.slowWrites).toBe(0);
    now = 200;
    expect(policy.allows(512)).toBe(true);
    ticks.push(200, 230, 230); // a 30 ms write: slow (start, end, and the time the backoff counts from)
    policy.write(fd, [Buffer.alloc(512)], 0);
    expect(policy.slowWrites).toBe(1);
    now = 1000;
    expect(policy.allows(512)).toBe(false);
    now = 1229;
    expect(policy.allows(512)).toBe(false);
    now = 1230;
    expect(policy.allows(512)).toBe(true);
  });

  it('writes back to back read the sleep count once; after a pause, again', () => {
    let calls = 0;
    const ticks = [0, 0.01, 0.05, 0.06, 5, 5.01];
    const policy = new InlineWritePolicy(
      { maxBytes: 65_536, slowMs: 20, backoffMs: 1000 },
      () => ticks.shift() ?? 10,
      () => (calls++, 7),
    );
    policy.write(fd, [Buffer.alloc(512)], 0);
    policy.write(fd, [Buffer.alloc(512)], 512); // 0.04 ms after the first ended: same burst
    expect(calls).toBe(1);
    policy.write(fd, [Buffer.alloc(512)], 1024); // 4.94 ms later: read again
    expect(calls).toBe(2);
  });

  it('a slow write in a burst after one that slept turns inline writes off', () => {
    let switches = 3;
    const ticks = [0, 1, 1.1, 31, 31];
    const policy = new InlineWritePolicy(
      { maxBytes: 65_536, slowMs: 20, backoffMs: 1000 },
      () => ticks.shift() ?? 40,
      () => switches,
    );
    policy.write(fd, [Buffer.alloc(512)], 0);
    switches = 4; // the first write slept (fast all the same)
    policy.write(fd, [Buffer.alloc(512)], 512); // 30 ms, back to back with it
    expect(policy.slowWrites).toBe(1);
    expect(policy.allows(512)).toBe(false);
  });

  it('a slow write that did not sleep (only preempted) leaves inline writes on', () => {
    const ticks = [0, 50, 50];
    const policy = new InlineWritePolicy(
      { maxBytes: 65_536, slowMs: 20, backoffMs: 1000 },
      () => ticks.shift() ?? 60,
      () => 7, // no voluntary switch during the write
    );
    policy.write(fd, [Buffer.alloc(512)], 0);
    expect(policy.slowWrites).toBe(0);
    expect(policy.allows(512)).toBe(true);
  });

  it('voluntarySwitches() counts this thread sleeping in the kernel', () => {
    const before = voluntarySwitches();
    expect(before).toBeGreaterThanOrEqual(0);
    // A synchronous sleep in the kernel: Atomics.wait blocks this thread on a futex.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    expect(voluntarySwitches()).toBeGreaterThan(before);
  });

  it('a failing write throws the system error (EBADF)', () => {
    const other = fs.openSync(file, 'r');
    const policy = new InlineWritePolicy();
    expect(() => policy.write(other, [Buffer.alloc(512)], 0)).toThrow(/EBADF/);
    fs.closeSync(other);
  });
});
