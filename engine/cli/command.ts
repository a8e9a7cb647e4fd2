/** The shape of a CLI command, and the helpers commands use to read options and print. */
import type { ParseArgsConfig } from 'node:util';
import { BlksnapError } from '../abi/errno.js';
import type { HelperClient } from '../protocol/client.js';

export type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
export type OptionValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
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
  example: string;
  options: OptionsConfig;
  /** Connects to the helper before run (all but "daemon"). */
  needsHelper: boolean;
  allowPositionals?: boolean;
  run(ctx: RunContext): Promise<void>;
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
  if (v === undefined || v === '') throw new BlksnapError('EINVAL', `missing ${flag}`);
  return v;
}

export function optList(values: OptionValues, name: string): string[] {
  const v = values[name];
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is string => typeof x === 'string');
}

export function printJson(io: Io, value: unknown): void {
  io.stdout(JSON.stringify(value, null, 2) + '\n');
}

/** key=value lines, the blksnap tool's output style. */
export function printFields(io: Io, fields: [string, string | number][]): void {
  io.stdout(fields.map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
}
