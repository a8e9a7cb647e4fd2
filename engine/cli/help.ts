/** --help texts. */
import type { CommandSpec } from './command.js';

const COMMON: [string, string][] = [
  ['--socket PATH', 'helper socket (default $XDG_RUNTIME_DIR/blksnap-manager/helper.sock)'],
  ['--json', 'print the result as JSON'],
  ['-h, --help', 'show this help'],
];

function table(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([a]) => a.length), 0) + 2;
  return rows.map(([a, b]) => `  ${a.padEnd(width)}${b}`).join('\n');
}

export function commandHelp(spec: CommandSpec): string {
  return [
    `Usage: blksnap-manager ${spec.name}${spec.usage ? ` ${spec.usage}` : ''} [--socket PATH] [--json]`,
    '',
    `${spec.summary[0]?.toUpperCase() ?? ''}${spec.summary.slice(1)}.`,
    '',
    'Options:',
    table([...spec.help, ...COMMON]),
    '',
    `Example:\n  ${spec.example}`,
    '',
  ].join('\n');
}

export function daemonUsage(rows: [string, string][]): string {
  return [
    'Usage: blksnap-manager daemon [--socket PATH] [--state-dir DIR] [--driver auto|kernel|embedded] [--param NAME=VALUE...]',
    '',
    'Runs the privileged helper in the foreground until SIGTERM or SIGINT.',
    '',
    'Options:',
    table([...rows, ['-h, --help', 'show this help']]),
    '',
    'Example:\n  blksnap-manager daemon --socket /run/user/1000/blksnap-manager/helper.sock --state-dir /var/lib/blksnap-manager',
    '',
  ].join('\n');
}

export function mainHelp(specs: CommandSpec[]): string {
  return [
    'Usage: blksnap-manager COMMAND [OPTIONS]',
    '',
    'Block-device snapshots with change-block tracking, through the blksnap-manager helper.',
    'DEV is a block-device path, or for the embedded engine an image path or name.',
    'Exit status: 0 on success, else the errno number; the errno name and a message go to stderr.',
    '',
    'Commands:',
    table([['daemon', 'run the helper (privileged daemon) in the foreground'], ...specs.map((s): [string, string] => [s.name, s.summary])]),
    '',
    'Run "blksnap-manager COMMAND --help" for the options of a command.',
    '',
  ].join('\n');
}
