/**
 * The change numbers the legend shows: up to six evenly spread from the lowest
 * coloured number (1, or N + 1 in "changed since N" mode) to the newest, always
 * ending with the newest.
 */
export function legendSteps(newest: number, sinceN: number | null): number[] {
  const low = sinceN === null ? 1 : sinceN + 1;
  const high = Math.max(low, newest);
  const count = Math.min(6, high - low + 1);
  const steps: number[] = [];
  for (let i = 0; i < count; i++) steps.push(Math.round(low + ((high - low) * i) / Math.max(1, count - 1)));
  return [...new Set(steps)];
}
