import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  base64Decode,
  base64Encode,
  decodeCbtMap,
  encodeCbtMap,
  rleDecode,
  rleEncode,
} from '../../../engine/protocol/cbt-encoding.js';

describe('base64', () => {
  it('matches Node.js Buffer for every length remainder', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = base64Encode(bytes);
        expect(text).toBe(Buffer.from(bytes).toString('base64'));
        expect(base64Decode(text)).toEqual(bytes);
      }),
    );
  });

  it('rejects malformed text', () => {
    expect(() => base64Decode('abc')).toThrow(/^base64 length is not a multiple of 4$/);
    expect(() => base64Decode('ab=c')).toThrow(/^invalid base64 character$/);
    expect(() => base64Decode('a*cd')).toThrow(/^invalid base64 character$/);
    expect(() => base64Decode('A=B=')).toThrow(/^invalid base64 character$/);
  });
});

describe('rle1 record stream', () => {
  it('encodes runs and literals as documented', () => {
    // 6 x 0x00 -> run; then 1,2,3 -> literal
    expect([...rleEncode(Uint8Array.from([0, 0, 0, 0, 0, 0, 1, 2, 3]))]).toEqual([0x01, 6, 0, 0x00, 3, 1, 2, 3]);
    // runs shorter than 4 stay literal
    expect([...rleEncode(Uint8Array.from([7, 7, 7]))]).toEqual([0x00, 3, 7, 7, 7]);
    // LEB128 lengths: 300 = 0xAC 0x02
    expect([...rleEncode(new Uint8Array(300))]).toEqual([0x01, 0xac, 0x02, 0]);
    expect(rleEncode(new Uint8Array(0)).length).toBe(0);
  });

  it('produces the examples of docs/helper.md', () => {
    expect(encodeCbtMap(Uint8Array.from([0, 0, 0, 0, 0, 0, 1, 2, 3]))).toBe('AQYAAAMBAgM=');
    expect(encodeCbtMap(new Uint8Array(1 << 20))).toBe('AYCAQAA=');
  });

  it('round-trips arbitrary maps, sparse maps and long runs', () => {
    const sparse = fc
      .array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 2000 })), { maxLength: 40 })
      .map((runs) => {
        const out: number[] = [];
        for (const [v, n] of runs) for (let i = 0; i < n; i++) out.push(v);
        return Uint8Array.from(out);
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 2000 }), sparse), (bytes) => {
        expect(rleDecode(rleEncode(bytes), bytes.length)).toEqual(bytes);
        expect(decodeCbtMap(encodeCbtMap(bytes), bytes.length)).toEqual(bytes);
      }),
    );
  });

  it('keeps a 1 MiB all-zero map tiny and random data within a few bytes of its size', () => {
    expect(encodeCbtMap(new Uint8Array(1 << 20)).length).toBeLessThan(16);
    const noisy = Uint8Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 251);
    expect(rleEncode(noisy).length).toBeLessThanOrEqual(4096 + 4);
  });

  it('rejects malformed streams and wrong sizes', () => {
    expect(() => rleDecode(Uint8Array.from([0x02, 1, 0]), 10)).toThrow(/unknown record tag/);
    expect(() => rleDecode(Uint8Array.from([0x00, 5, 1, 2]), 10)).toThrow(/truncated literal/);
    expect(() => rleDecode(Uint8Array.from([0x01, 5]), 10)).toThrow(/truncated run/);
    expect(() => rleDecode(Uint8Array.from([0x01, 0, 9]), 10)).toThrow(/zero-length/);
    expect(() => rleDecode(Uint8Array.from([0x01, 0x80]), 10)).toThrow(/truncated length/);
    expect(() => rleDecode(Uint8Array.from([0x01, 20, 1]), 10)).toThrow(/more bytes than announced/);
    const text = encodeCbtMap(Uint8Array.from([1, 2, 3]));
    expect(() => decodeCbtMap(text, 4)).toThrow(/expected 4/);
  });
});
