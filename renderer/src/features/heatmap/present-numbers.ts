/** The change numbers a CBT map really holds, and what the N field may accept (pure). */

/** The distinct non-zero change numbers in `map`, ascending. */
export function presentNumbers(map: Uint8Array): number[] {
  const seen = new Uint8Array(256);
  for (const n of map) seen[n] = 1;
  const out: number[] = [];
  for (let n = 1; n < 256; n++) if (seen[n] === 1) out.push(n);
  return out;
}

/** The legend's numbers: present ones above the "since" cut, at most six evenly picked, always the highest. */
export function legendNumbers(present: readonly number[], sinceN: number | null): number[] {
  const shown = present.filter((n) => n > (sinceN ?? 0));
  if (shown.length <= 6) return shown;
  const picks = new Set<number>();
  for (let i = 0; i < 6; i++) picks.add(shown[Math.round(((shown.length - 1) * i) / 5)] as number);
  return [...picks];
}

/**
 * Checks what was typed in the N field: 0 (every change) or a change number the map
 * holds. The error names the numbers that exist, so nothing is silently coerced.
 */
export function parseSinceN(text: string, present: readonly number[]): { value: number } | { error: string } {
  const trimmed = text.trim();
  const choices = present.length > 0 ? `0 or one of the change numbers in the map: ${present.join(', ')}` : '0 (the map holds no change yet)';
  if (!/^\d+$/.test(trimmed)) return { error: `N is a whole number: ${choices}.` };
  const n = Number(trimmed);
  if (n !== 0 && !present.includes(n)) return { error: `No block has change number ${n}; N is ${choices}.` };
  return { value: n };
}
