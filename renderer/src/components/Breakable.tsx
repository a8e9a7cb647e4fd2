import { Fragment } from 'react';
import { breakPieces } from './break-points.js';

/** A long path or URI that wraps at its separators rather than mid-word (the text is unchanged). */
export function Breakable({ text }: { text: string }) {
  return (
    <>
      {breakPieces(text).map((piece, i) => (
        <Fragment key={i}>
          {i > 0 ? <wbr /> : null}
          {piece}
        </Fragment>
      ))}
    </>
  );
}
