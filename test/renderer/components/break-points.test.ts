import { describe, expect, it } from 'vitest';
import { breakPieces } from '../../../renderer/src/components/break-points.js';

describe('break points of paths and URIs', () => {
  it('breaks an NBD URI after slashes and before query separators, keeping the text', () => {
    const uri = 'nbd+unix:///disk1?socket=/tmp/blksnap/run/nbd.sock';
    const pieces = breakPieces(uri);
    expect(pieces.join('')).toBe(uri);
    expect(pieces).toEqual(['nbd+unix:///', 'disk1', '?socket', '=/', 'tmp/', 'blksnap/', 'run/', 'nbd.sock']);
  });

  it('keeps "://" whole and handles paths, & and empty text', () => {
    expect(breakPieces('nbd://127.0.0.1:10809/disk2')).toEqual(['nbd://', '127.0.0.1:10809/', 'disk2']);
    expect(breakPieces('/var/lib/x.img')).toEqual(['/var/', 'lib/', 'x.img']);
    expect(breakPieces('a?b=1&c=2')).toEqual(['a', '?b', '=1', '&c', '=2']);
    expect(breakPieces('')).toEqual([]);
  });
});
