import { colorOf, cssColor } from './palette.js';
import { legendSteps } from './legend-steps.js';
import { legendNumbers } from './present-numbers.js';

interface Props {
  /** The newest change number the table can hold (live: the active number; snapshot: the last take's). */
  newest: number;
  /** The change numbers the map holds: the legend lists only these. */
  present?: readonly number[];
  /** Live view: the newest number is "since last snapshot". */
  live: boolean;
  sinceN: number | null;
  dark: boolean;
}

/** Swatches for the colours in use: never written, older than N (since mode), and the ramp. */
export function Legend({ newest, live, sinceN, dark, present }: Props) {
  const options = { changesNumber: newest, sinceN, dark };
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
      {(present ? legendNumbers(present, sinceN) : legendSteps(newest, sinceN)).map((v) => {
        const isNewest = v === newest;
        return (
          <li key={v} className={isNewest && live ? 'legend-active' : undefined} data-testid={isNewest ? 'legend-newest' : undefined}>
            <span className="swatch" style={{ background: cssColor(colorOf(v, options)) }} aria-hidden="true" />
            {v}
            {isNewest ? (live ? ': since last snapshot' : ' (last snapshot)') : ''}
          </li>
        );
      })}
    </ul>
  );
}
