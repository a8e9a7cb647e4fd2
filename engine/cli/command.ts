/** The shape of a CLI command, and the helpers commands use to read options and print. */
import type { ParseArgsConfig } from 'node:util';
import { BlksnapError } from '../abi/errno.js';
import type { HelperClient } from '../protocol/client.js';
import { escapeControlChars } from '../protocol/control-chars.js';

export type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
export type OptionValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  /** stderr is a terminal: long operations may show progress there. */
  isTty?: boolean;
}

export interface RunContext {
  values: OptionValues;
  positionals: string[];
  json: boolean;
  io: Io;
  /** Connected to the helper (commands with needsHelper). */
  client: HelperClient;
  socketPath: string;
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** Argument synopsis after the command name. */
  usage: string;
  /** One line per option: ["-d, --device DEV", "what it is"]. */
  help: [string, string][];
  /** One example command line, or several (the first is the common case). */
  example: string | string[];
  /** What the command prints on success (shown in --help); default: nothing. */
  prints?: string;
  options: OptionsConfig;
  /** Connects to the helper before run (all but "daemon"). */
  needsHelper: boolean;
  allowPositionals?: boolean;
  /** Resolves to nothing (exit 0) or an exit status (e.g. 130 after Ctrl+C). */
  run(ctx: RunContext): Promise<void | number>;
}

export function optString(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  if (Array.isArray(v)) {
    const last = v[v.length - 1];
    return typeof last === 'string' ? last : undefined;
  }
  return typeof v === 'string' ? v : undefined;
}

export function needString(values: OptionValues, name: string, flag: string): string {
  const v = optString(values, name);
  if (v === undefined || v === '') throw new BlksnapError('EINVAL', `missing ${flag} (see --help)`);
  return v;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** --id (or `flag`): a snapshot id as snapshot_create prints it (checked here, so the message names the option). */
export function needSnapshotId(values: OptionValues, flag = '--id'): string {
  const id = needString(values, 'id', `${flag} ID`);
  if (!UUID_RE.test(id)) {
    throw new BlksnapError(
      'EINVAL',
      `${flag} must be a snapshot id as printed by snapshot_create (e.g. 34c88ecd-cacf-45e4-a00d-f2ffa0f87e23), got "${id}"; "blksnap-manager snapshot_collect" lists them`,
    );
  }
  return id.toLowerCase();
}

export function optList(values: OptionValues, name: string): string[] {
  const v = values[name];
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is string => typeof x === 'string');
}

/**
 * JSON text for a terminal: JSON.stringify escapes C0 controls itself; DEL and C1
 * (U+007F–U+009F) are escaped here too (\u009b), so no raw control reaches it.
 * The data is unchanged for a JSON parser.
 */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(/[\u007f-\u009f]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
}

export function printJson(io: Io, value: unknown): void {
  io.stdout(toJson(value, 2) + '\n');
}

/**
 * A table with a header line (list commands). Columns are padded to their widest
 * cell; the last column is not padded. An empty list prints `empty` instead.
 * Control characters in cells (names from the system) are shown escaped ("\x1b").
 */
export function printTable(io: Io, headers: string[], cells: string[][], empty: string): void {
  if (cells.length === 0) {
    io.stdout(`${empty}\n`);
    return;
  }
  const rows = cells.map((r) => r.map(escapeControlChars));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  io.stdout([headers, ...rows].map(line).join('\n') + '\n');
}

/** key=value lines, the blksnap tool's output style (control characters in values escaped). */
export function printFields(io: Io, fields: [string, string | number][]): void {
  io.stdout(fields.map(([k, v]) => `${k}=${escapeControlChars(String(v))}`).join('\n') + '\n');
}
