/**
 * Splits a path or URI into pieces between which a line may break: after each "/"
 * (except inside "://") and before "?", "&" and "=" (pure). Joined, the pieces are the text.
 */
export function breakPieces(text: string): string[] {
  const pieces: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if ((c === '?' || c === '&' || c === '=') && current !== '') {
      pieces.push(current);
      current = '';
    }
    current += c;
    if (c === '/' && text[i + 1] !== '/' && current.length > 1) {
      pieces.push(current);
      current = '';
    }
  }
  if (current !== '') pieces.push(current);
  return pieces;
}
