import { Fragment } from 'react';
import { escapeControlChars } from '../../../app/shared/control-chars.js';
import { breakPieces } from './break-points.js';

/**
 * A long path or URI that wraps at its separators rather than mid-word. Control
 * characters (a path from the system may hold them) are shown escaped ("\x1b").
 */
export function Breakable({ text }: { text: string }) {
  return (
    <>
      {breakPieces(escapeControlChars(text)).map((piece, i) => (
        <Fragment key={i}>
          {i > 0 ? <wbr /> : null}
          {piece}
        </Fragment>
      ))}
    </>
  );
}
