/**
 * Positioned I/O on a raw file descriptor (the callback API: less overhead than
 * FileHandle on hot paths), looping over short reads and writes.
 */
import * as fs from 'node:fs';

function pread(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function pwrite(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function preadv(fd: number, bufs: Buffer[], pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.readv(fd, bufs, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function pwritev(fd: number, bufs: readonly Buffer[], pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.writev(fd, bufs, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/** Reads exactly buf[off, off+len) from `pos`; bytes past the end of the file read as zeroes. */
export async function readFull(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const n = await pread(fd, buf, off + done, len - done, pos + done);
    if (n === 0) {
      buf.fill(0, off + done, off + len);
      return;
    }
    done += n;
  }
}

/** readFull() on the calling thread (for data known to be in the page cache). */
export function readFullSync(fd: number, buf: Buffer, off: number, len: number, pos: number): void {
  let done = 0;
  while (done < len) {
    const n = fs.readSync(fd, buf, off + done, len - done, pos + done);
    if (n === 0) {
      buf.fill(0, off + done, off + len);
      return;
    }
    done += n;
  }
}

export async function writeFull(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const n = await pwrite(fd, buf, off + done, len - done, pos + done);
    if (n <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    done += n;
  }
}

export function total(bufs: readonly Buffer[]): number {
  let n = 0;
  for (const b of bufs) n += b.length;
  return n;
}

/** Skips `n` bytes of a buffer list (after a short vectored transfer). */
export function advance(bufs: readonly Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = n;
  for (const b of bufs) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}

/** Vectored read of every buffer in order from `pos` (past the end: zeroes). */
export async function readvFull(fd: number, bufs: Buffer[], pos: number): Promise<void> {
  let rest = bufs;
  let at = pos;
  let left = total(bufs);
  while (left > 0) {
    const n = await preadv(fd, rest, at);
    if (n === 0) {
      for (const b of rest) b.fill(0);
      return;
    }
    left -= n;
    at += n;
    rest = advance(rest, n);
  }
}

/** Vectored write of every buffer in order at `pos`. */
export async function writevFull(fd: number, bufs: readonly Buffer[], pos: number): Promise<void> {
  let rest: readonly Buffer[] = bufs;
  let at = pos;
  let left = total(bufs);
  while (left > 0) {
    const n = await pwritev(fd, rest, at);
    if (n <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    left -= n;
    at += n;
    rest = advance(rest, n);
  }
}

export function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.fdatasync(fd, (err) => (err ? reject(err) : resolve()));
  });
}

export function ftruncate(fd: number, len: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.ftruncate(fd, len, (err) => (err ? reject(err) : resolve()));
  });
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.close(fd, (err) => (err ? reject(err) : resolve()));
  });
}
