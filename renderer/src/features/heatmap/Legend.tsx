import { colorOf, cssColor } from './palette.js';

/** Swatches for the colours in use: never written, older than N (since mode), and the ramp. */
export function Legend({ changesNumber, sinceN, dark }: { changesNumber: number; sinceN: number | null; dark: boolean }) {
  const options = { changesNumber, sinceN, dark };
  const low = sinceN === null ? 1 : sinceN + 1;
  const high = Math.max(low, changesNumber);
  const steps: number[] = [];
  const count = Math.min(6, high - low + 1);
  for (let i = 0; i < count; i++) steps.push(Math.round(low + ((high - low) * i) / Math.max(1, count - 1)));
  const unique = [...new Set(steps)];
  return (
    <ul className="legend" aria-label="Legend" data-testid="heatmap-legend">
      <li>
        <span className="swatch" style={{ background: cssColor(colorOf(0, options)) }} aria-hidden="true" />
        0: not written
      </li>
      {sinceN !== null && sinceN > 0 ? (
        <li>
          <span className="swatch" style={{ background: cssColor(colorOf(1, options)) }} aria-hidden="true" />
          1–{sinceN}: changed before snapshot {sinceN + 1}
        </li>
      ) : null}
      {unique.map((v) => (
        <li key={v}>
          <span className="swatch" style={{ background: cssColor(colorOf(v, options)) }} aria-hidden="true" />
          {v}
          {v === changesNumber ? ' (current)' : ''}
        </li>
      ))}
    </ul>
  );
}
