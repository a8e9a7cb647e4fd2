/**
 * blksnap-manager: the command-line client of the helper, after the blksnap console
 * tool, plus `daemon` (runs the helper). main() returns the exit status: 0, or the
 * errno number of the failure (its name and a plain message on stderr).
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { BlksnapError, isBlksnapError } from '../abi/errno.js';
import type { ErrnoName } from '../abi/errno.js';
import { ERRNO, isErrnoName } from '../abi/errno.js';
import { HelperCallError, HelperClient } from '../protocol/client.js';
import { escapeControlChars } from '../protocol/control-chars.js';
import { blksnapCommands } from './blksnap-commands.js';
import type { CommandSpec, Io, OptionsConfig } from './command.js';
import { needSnapshotId, optString, toJson } from './command.js';
import { daemonHelp, daemonOptions, runDaemonCommand } from './daemon-command.js';
import { commandHelp, daemonUsage, mainHelp } from './help.js';
import { eventCommands } from './event-commands.js';
import { managerCommands } from './manager-commands.js';
import { backupCommands } from './backup-commands.js';
import { defaultSocketPath } from './paths.js';
import { SocketTransport } from './socket-transport.js';

export const COMMANDS: CommandSpec[] = [...blksnapCommands, ...managerCommands, ...eventCommands, ...backupCommands];

const COMMON_OPTIONS: OptionsConfig = {
  socket: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const processIo: Io = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  isTty: process.stderr.isTTY === true,
};

function failure(err: unknown): { errno: ErrnoName; message: string; code?: string } {
  if (err instanceof HelperCallError) return { errno: err.errno, message: err.message, code: err.code };
  if (isBlksnapError(err)) {
    const prefix = `${err.errno}: `;
    return { errno: err.errno, message: err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message };
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
    return { errno: 'EINVAL', message: `${(err as Error).message} (see --help)` };
  }
  // a local system error (e.g. the output file of readcbtmap): keep its errno
  if (isErrnoName(code)) return { errno: code, message: err instanceof Error ? err.message : String(err) };
  return { errno: 'EIO', message: err instanceof Error ? err.message : String(err) };
}

/** What to do next, for the failures an administrator meets most. */
function hint(f: { errno: ErrnoName; message: string; code?: string }, command: string): string {
  const untracked = /^no blksnap filter on (.+)$/.exec(f.message);
  if (f.errno === 'ENOENT' && untracked && command !== 'detach') {
    return ` (changes are not tracked on it yet: start with "blksnap-manager attach -d ${untracked[1]}"; snapshot_create attaches too)`;
  }
  if (f.code === 'closed') return ' (the helper stopped or crashed before answering; its log says why, and a new helper cleans up after it)';
  if (/^no snapshot [0-9a-f-]+$/.test(f.message)) return '; "blksnap-manager snapshot_collect" lists the snapshots';
  if (f.errno === 'ENOENT' && /^no device or registered image named/.test(f.message)) return '; "blksnap-manager devices" lists them';
  const holder = /is (?:already )?in snapshot ([0-9a-f-]{36})$/.exec(f.message);
  if (f.errno === 'EBUSY' && holder) return `; destroy that snapshot first (blksnap-manager snapshot_destroy -i ${holder[1]})`;
  if (f.errno === 'EALREADY' && /^snapshot [0-9a-f-]+ is already taken$/.test(f.message)) {
    return '; devices can only be added before snapshot_take (create another snapshot for more devices)';
  }
  return '';
}

function findCommand(argv: string[]): { spec: CommandSpec | null; rest: string[]; name: string } {
  const [first, second] = argv;
  if ((first === 'image' || first === 'workload' || first === 'events') && second !== undefined && !second.startsWith('-')) {
    const name = `${first} ${second}`;
    return { spec: COMMANDS.find((c) => c.name === name) ?? null, rest: argv.slice(2), name };
  }
  return { spec: COMMANDS.find((c) => c.name === first) ?? null, rest: argv.slice(1), name: first ?? '' };
}

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  let json = argv.includes('--json');
  try {
    if (argv.length === 0) {
      // a usage error: the overview goes to stderr, so stdout stays empty for scripts
      io.stderr(mainHelp(COMMANDS));
      return ERRNO.EINVAL;
    }
    if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      io.stdout(mainHelp(COMMANDS));
      return 0;
    }
    if (argv[0] === 'daemon') {
      const { values } = parseArgs({ args: argv.slice(1), options: { ...daemonOptions, help: { type: 'boolean', short: 'h' } }, strict: true });
      if (values.help) {
        io.stdout(daemonUsage(daemonHelp));
        return 0;
      }
      await runDaemonCommand(values, io.stderr);
      return 0;
    }
    const { spec, rest, name } = findCommand(argv);
    if (!spec) {
      if (name === 'image') throw new BlksnapError('EINVAL', 'image needs a subcommand: create, add, list or remove (see --help)');
      if (name === 'workload') throw new BlksnapError('EINVAL', 'workload needs a subcommand: start, stop or list (see --help)');
      throw new BlksnapError('EINVAL', `unknown command "${name}" (see blksnap-manager --help)`);
    }
    const { values, positionals } = parseArgs({
      args: rest,
      options: { ...spec.options, ...COMMON_OPTIONS },
      strict: true,
      allowPositionals: spec.allowPositionals ?? false,
    });
    json = values.json === true;
    if (values.help) {
      io.stdout(commandHelp(spec));
      return 0;
    }
    // argument errors before connecting: they must not depend on a helper being there
    if (spec.options.id !== undefined) needSnapshotId(values);
    const socketPath = optString(values, 'socket') ?? defaultSocketPath();
    const transport = await SocketTransport.connect(socketPath);
    const client = new HelperClient(transport);
    try {
      await client.hello('blksnap-manager-cli');
      const status = await spec.run({ values, positionals, json, io, client, socketPath });
      return typeof status === 'number' ? status : 0;
    } finally {
      client.close();
    }
  } catch (err) {
    const failed = failure(err);
    const f = { ...failed, message: failed.message + hint(failed, findCommand(argv).name) };
    if (json) io.stderr(toJson({ error: f }) + '\n');
    else io.stderr(`blksnap-manager: ${f.errno}: ${escapeControlChars(f.message)}\n`);
    return ERRNO[f.errno] || 1;
  }
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
