import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { blockHash, imageBlockHash } from '../../../engine/backup/block-hash.js';
import { Sha256Worker } from '../../../engine/backup/sha256-worker.js';
import { seededRandom } from '../../helpers/seeded-random.js';

/** bsm64 written straight from its definition in docs/backup.md, word by word. */
function bsm64FromDocs(data: Uint8Array): string {
  const P = [0x9e3779b1, 0x85ebca77, 0xc2b2ae3d, 0x27d4eb2f, 0x165667b1];
  const mul = (a: number, b: number): number => Number((BigInt(a >>> 0) * BigInt(b >>> 0)) % 2n ** 32n);
  const add = (...xs: number[]): number => xs.reduce((s, x) => (s + (x >>> 0)) % 2 ** 32, 0);
  const rotl = (x: number, r: number): number => ((x << r) | (x >>> (32 - r))) >>> 0;
  const mix = (x: number): number => {
    let h = x >>> 0;
    h = (h ^ (h >>> 15)) >>> 0;
    h = mul(h, P[1]!);
    h = (h ^ (h >>> 13)) >>> 0;
    h = mul(h, P[2]!);
    return (h ^ (h >>> 16)) >>> 0;
  };
  const padded = new Uint8Array(Math.ceil(data.length / 16) * 16);
  padded.set(data);
  const v = [add(P[0]!, P[1]!), P[1]!, 0, (2 ** 32 - P[0]!) >>> 0];
  for (let i = 0; i < padded.length; i += 16) {
    for (let lane = 0; lane < 4; lane++) {
      const w = padded[i + lane * 4]! | (padded[i + lane * 4 + 1]! << 8) | (padded[i + lane * 4 + 2]! << 16) | (padded[i + lane * 4 + 3]! << 24);
      v[lane] = mul(rotl(add(v[lane]!, mul(w, P[1]!)), 13), P[0]!);
    }
  }
  const lo = mix(add(rotl(v[0]!, 1), rotl(v[1]!, 7), rotl(v[2]!, 12), rotl(v[3]!, 18), data.length));
  const hi = mix((mul(rotl(v[0]!, 5), P[2]!) ^ mul(rotl(v[1]!, 11), P[3]!) ^ mul(rotl(v[2]!, 17), P[4]!) ^ mul(rotl(v[3]!, 23), P[0]!) ^ lo) >>> 0);
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

describe('bsm64 block hash', () => {
  it('matches its documented definition, for aligned, unaligned and odd-length inputs', () => {
    const rnd = seededRandom(5);
    const big = randomBytes(70_000);
    for (let i = 0; i < 30; i++) {
      const start = Math.floor(rnd() * 100);
      const len = i < 10 ? 512 * (1 + Math.floor(rnd() * 64)) : Math.floor(rnd() * 5000);
      const piece = big.subarray(start, start + len);
      expect(blockHash(piece)).toBe(bsm64FromDocs(piece));
    }
    expect(blockHash(Buffer.alloc(0))).toBe(bsm64FromDocs(new Uint8Array(0)));
  });

  it('changes with any one flipped bit and with the length of zero blocks', () => {
    const block = randomBytes(4096);
    const base = blockHash(block);
    const seen = new Set([base]);
    for (let bit = 0; bit < 4096 * 8; bit += 97) {
      const copy = Buffer.from(block);
      copy[bit >> 3] = copy[bit >> 3]! ^ (1 << (bit & 7));
      seen.add(blockHash(copy));
    }
    expect(seen.size).toBe(1 + Math.ceil((4096 * 8) / 97));
    expect(blockHash(Buffer.alloc(512))).not.toBe(blockHash(Buffer.alloc(1024)));
  });
});

describe('imageBlockHash: bsm64 with all-zero blocks answered from a cache', () => {
  it('equals the definition for zero blocks of several lengths (cached or not) and for data', () => {
    for (const len of [512, 4096, 65536, 4096, 512, 1000]) expect(imageBlockHash(Buffer.alloc(len))).toBe(bsm64FromDocs(new Uint8Array(len)));
    const data = Buffer.alloc(65536);
    data[65535] = 1; // zero but for the last byte
    expect(imageBlockHash(data)).toBe(bsm64FromDocs(data));
  });
});

describe('SHA-256 on a worker thread', () => {
  it('handed-over buffers: whole ones move to the worker, slices are copied; the digest is of all bytes in order', async () => {
    const whole = [Buffer.from(new Uint8Array(70000).fill(3).buffer), Buffer.from(new Uint8Array(4096).fill(9).buffer)];
    const backing = randomBytes(50000);
    const slice = backing.subarray(1000, 40000);
    const expected = createHash('sha256').update(whole[0]!).update(slice).update(whole[1]!).digest('hex');
    const w = new Sha256Worker();
    await w.update(whole[0]!, true);
    expect(whole[0]!.buffer.byteLength).toBe(0); // moved, not copied
    await w.update(slice, true);
    expect(slice.length).toBe(39000); // a slice of a larger buffer stays the caller's
    await w.update(whole[1]!, true);
    expect(await w.digest()).toBe(expected);
  });

  it('gives the digest of all chunks in order, with more chunks than its queue holds', async () => {
    const chunks = Array.from({ length: 20 }, (_, i) => randomBytes(1000 + i * 7919));
    const expected = createHash('sha256').update(Buffer.concat(chunks)).digest('hex');
    const w = new Sha256Worker();
    for (const c of chunks) {
      await w.update(c);
      c.fill(0); // the worker hashes its own copy
    }
    expect(await w.digest()).toBe(expected);
  });

  it('keeps a process with nothing else to do alive until the digest arrives', async () => {
    const repo = fileURLToPath(new URL('../../..', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'test/engine/backup/sha-child.ts'], { cwd: repo });
    const expected = createHash('sha256');
    for (let i = 0; i < 8; i++) expected.update(Buffer.alloc(65536, i));
    expect(stdout.trim()).toBe(expected.digest('hex'));
  });
});
