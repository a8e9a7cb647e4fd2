import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeBase64, encodeBase64 } from '../../../app/shared/base64.js';

describe('base64', () => {
  it('matches the RFC 4648 test vectors', () => {
    const vectors: [string, string][] = [
      ['', ''],
      ['f', 'Zg=='],
      ['fo', 'Zm8='],
      ['foo', 'Zm9v'],
      ['foob', 'Zm9vYg=='],
      ['fooba', 'Zm9vYmE='],
      ['foobar', 'Zm9vYmFy'],
    ];
    for (const [plain, encoded] of vectors) {
      const bytes = new Uint8Array([...plain].map((c) => c.charCodeAt(0)));
      expect(encodeBase64(bytes)).toBe(encoded);
      expect(decodeBase64(encoded)).toEqual(bytes);
    }
  });

  it('agrees with Buffer and round-trips arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (bytes) => {
        const text = encodeBase64(bytes);
        expect(text).toBe(Buffer.from(bytes).toString('base64'));
        expect(decodeBase64(text)).toEqual(bytes);
      }),
    );
  });

  it('handles a 2 MiB CBT map', () => {
    const map = new Uint8Array(2 * 1024 * 1024);
    for (let i = 0; i < map.length; i++) map[i] = (i * 7) & 255;
    const text = encodeBase64(map);
    expect(text.length).toBe(Math.ceil(map.length / 3) * 4);
    expect(Buffer.from(decodeBase64(text)).equals(Buffer.from(map))).toBe(true);
  });

  it('rejects malformed input', () => {
    expect(() => decodeBase64('abc')).toThrow(/^base64 length is not a multiple of 4$/);
    expect(() => decodeBase64('ab!d')).toThrow(/^invalid base64 character at 2$/);
    expect(() => decodeBase64('a===')).toThrow(/^invalid base64 character at 1$/);
    expect(() => decodeBase64('Zm9v\u00e9===')).toThrow(/^invalid base64 character at 4$/);
  });
});
