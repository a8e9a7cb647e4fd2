import { describe, expect, it } from 'vitest';
import { escapeControlChars, findControlChar } from '../../../app/shared/control-chars.js';
import * as engineCopy from '../../../engine/protocol/control-chars.js';

describe('app/shared escapeControlChars', () => {
  it('shows control characters visibly', () => {
    expect(escapeControlChars('sd\x1b[2Jb')).toBe('sd\\x1b[2Jb');
    expect(escapeControlChars('/mnt/a\nb\u009b')).toBe('/mnt/a\\nb\\u009b');
    expect(findControlChar('ok')).toBeNull();
  });

  it('answers exactly as the engine/protocol copy for every UTF-16 code unit', () => {
    for (let code = 0; code <= 0xffff; code++) {
      const text = `a${String.fromCharCode(code)}b`;
      if (escapeControlChars(text) !== engineCopy.escapeControlChars(text)) {
        expect(escapeControlChars(text), `U+${code.toString(16)}`).toBe(engineCopy.escapeControlChars(text));
      }
      if (JSON.stringify(findControlChar(text)) !== JSON.stringify(engineCopy.findControlChar(text))) {
        expect(findControlChar(text), `U+${code.toString(16)}`).toEqual(engineCopy.findControlChar(text));
      }
    }
  });
});
