/** --help texts. */
import type { CommandSpec } from './command.js';

const COMMON: [string, string][] = [
  ['--socket PATH', 'helper socket (default $XDG_RUNTIME_DIR/blksnap-manager/helper.sock, else /run/user/UID/..., else /tmp/blksnap-manager-UID/helper.sock)'],
  ['--json', 'print the result as JSON'],
  ['-h, --help', 'show this help'],
];

function table(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([a]) => a.length), 0) + 2;
  return rows.map(([a, b]) => `  ${a.padEnd(width)}${b}`).join('\n');
}

export function commandHelp(spec: CommandSpec): string {
  const examples = Array.isArray(spec.example) ? spec.example : [spec.example];
  return [
    `Usage: blksnap-manager ${spec.name}${spec.usage ? ` ${spec.usage}` : ''} [--socket PATH] [--json]`,
    '',
    `${spec.summary[0]?.toUpperCase() ?? ''}${spec.summary.slice(1)}.`,
    `Prints: ${spec.prints ?? 'nothing on success (with --json: {"ok": true})'}.`,
    '',
    'Options:',
    table([...spec.help, ...COMMON]),
    '',
    `${examples.length > 1 ? 'Examples' : 'Example'}:`,
    ...examples.map((e) => `  ${e}`),
    '',
    'Exit status: 0, or the errno number of the failure (its name and what to do on stderr).',
    '',
  ].join('\n');
}

export function daemonUsage(rows: [string, string][]): string {
  return [
    'Usage: blksnap-manager daemon [--socket PATH] [--state-dir DIR] [--driver auto|kernel|embedded] [--param NAME=VALUE...]',
    '',
    'Runs the privileged helper in the foreground until SIGTERM or SIGINT (a clean shutdown:',
    'embedded snapshots destroyed, their storage files and the sockets removed; exit 0).',
    'A second SIGTERM or SIGINT during the shutdown ends the process at once.',
    '',
    'Options:',
    table([...rows, ['-h, --help', 'show this help']]),
    '',
    'A socket left behind by a helper that was killed is removed at start; a helper that is',
    'still listening is never displaced (exit status 16, EBUSY). Storage files of embedded',
    'snapshots that a killed helper left behind are removed at the next start.',
    '',
    'Examples:',
    '  blksnap-manager daemon --socket /run/user/1000/blksnap-manager/helper.sock --state-dir /var/lib/blksnap-manager',
    '  blksnap-manager daemon --socket /tmp/bm/helper.sock --state-dir /tmp/bm/state --driver embedded --param diffStorageMinimum=2048',
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
    'A first session (embedded engine):',
    '  blksnap-manager daemon --socket /tmp/bm/helper.sock --state-dir /tmp/bm/state --driver embedded &',
    '  export S="--socket /tmp/bm/helper.sock"',
    '  blksnap-manager image create --path /var/tmp/disk1.img --size 1G $S',
    '  id=$(blksnap-manager snapshot_create -d disk1 -f /var/tmp/diff0 -l 256M $S)',
    '  blksnap-manager snapshot_take -i $id $S',
    '  blksnap-manager snapshot_info -d disk1 $S      # the image and its NBD URI',
    '  blksnap-manager snapshot_destroy -i $id $S',
    '',
  ].join('\n');
}
