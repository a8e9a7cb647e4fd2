/**
 * Control characters in names and paths (pure). The helper refuses them as input
 * (schemas.ts); names that come from the system (lsblk, sysfs, a file in a directory)
 * may still hold them, so every output (CLI tables, the helper's log lines) shows
 * them escaped instead of letting a terminal act on them.
 *
 * app/shared/control-chars.ts holds the same two functions for the renderer, which
 * may not import engine/protocol (docs/architecture.md); a test keeps them equal.
 */

/** C0 controls (U+0000–U+001F), DEL (U+007F) and C1 controls (U+0080–U+009F). */
function isControl(code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f);
}

const SHORT: Record<number, string> = { 0x0a: '\\n', 0x0d: '\\r', 0x09: '\\t' };

function escapeCode(code: number): string {
  const short = SHORT[code];
  if (short !== undefined) return short;
  const hex = code.toString(16).padStart(2, '0');
  // C1 are characters, not bytes: \u0085 rather than \x85 (which would read as a byte)
  return code < 0x80 ? `\\x${hex}` : `\\u00${hex}`;
}

/** The first control character of `text` (its index and escaped form), or null. */
export function findControlChar(text: string): { index: number; escaped: string } | null {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (isControl(code)) return { index: i, escaped: escapeCode(code) };
  }
  return null;
}

/** `text` with every control character shown visibly: "\n", "\t", "\r", "\x1b", "\u009b". */
export function escapeControlChars(text: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (!isControl(code)) continue;
    out += text.slice(from, i) + escapeCode(code);
    from = i + 1;
  }
  return from === 0 ? text : out + text.slice(from);
}
