/**
 * The guest scenario's step runner: each step is timed and recorded as passed or
 * failed with its error; the record goes back to the host as one JSON line
 * ("VMRESULT {...}") on the serial console.
 */
export interface StepRecord {
  name: string;
  ok: boolean;
  ms: number;
  /** Values the step saw (the host test prints and checks some of them). */
  detail?: unknown;
  error?: string;
}

export class Steps {
  readonly records: StepRecord[] = [];

  /** Runs one step; a failure is recorded and rethrown when `required` (later steps need it). */
  async run<T>(name: string, fn: () => Promise<T>, required = false): Promise<T | undefined> {
    const started = Date.now();
    try {
      const value = await fn();
      this.records.push({ name, ok: true, ms: Date.now() - started, detail: value === undefined ? undefined : toJson(value) });
      process.stdout.write(`VMLOG ok ${name} (${Date.now() - started} ms)\n`);
      return value;
    } catch (err) {
      const error = describeError(err);
      this.records.push({ name, ok: false, ms: Date.now() - started, error });
      process.stdout.write(`VMLOG FAIL ${name}: ${error}\n`);
      if (required) throw err;
      return undefined;
    }
  }
}

/** JSON-safe copy (bigint as string, byte arrays as their length). */
function toJson(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === 'bigint') return v.toString();
      if (v instanceof Uint8Array) return { bytes: v.length };
      return v;
    }),
  );
}

/** The error's name and message, with actual and expected values of an assertion. */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as Error & { code?: unknown; actual?: unknown; expected?: unknown };
  const values = e.code === 'ERR_ASSERTION' ? ` (actual ${short(e.actual)}, expected ${short(e.expected)})` : '';
  return `${e.name}: ${e.message}${values}`;
}

function short(value: unknown): string {
  const text = JSON.stringify(toJson(value)) ?? String(value);
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
}
