/** `blksnap-manager daemon`: runs the helper in the foreground until SIGTERM/SIGINT. */
import { BlksnapError } from '../abi/errno.js';
import { DEFAULT_PARAMS, resolveParams } from '../core/params.js';
import type { ModuleParams } from '../core/params.js';
import type { DriverChoice } from '../helper/driver-select.js';
import type { OptionValues } from './command.js';
import { optList, optString } from './command.js';
import { defaultSocketPath, defaultStateDir } from './paths.js';

export const daemonOptions = {
  socket: { type: 'string' },
  'state-dir': { type: 'string' },
  driver: { type: 'string' },
  param: { type: 'string', multiple: true },
  quiet: { type: 'boolean', short: 'q' },
  'exit-with-parent': { type: 'boolean' },
} as const;

export const daemonHelp: [string, string][] = [
  ['--socket PATH', 'Unix socket to listen on (its directory is made 0700; default: where clients look, $XDG_RUNTIME_DIR/blksnap-manager/helper.sock, else /run/user/UID/..., else /tmp/blksnap-manager-UID/helper.sock)'],
  ['--state-dir DIR', 'registered images and settings, one helper at a time (default /var/lib/blksnap-manager for root, else ~/.local/state/blksnap-manager)'],
  ['--driver auto|kernel|embedded', 'auto: kernel when /dev/blksnap-control exists, else embedded'],
  ['--param NAME=VALUE', 'embedded engine module parameter, e.g. diffStorageMinimum=2048 (repeatable)'],
  ['--exit-with-parent', 'shut down when standard input closes (the parent that started the helper is gone)'],
  ['-q, --quiet', 'no log lines on stderr'],
];

function parseParams(list: string[]): Partial<ModuleParams> {
  const params: Partial<ModuleParams> = {};
  for (const item of list) {
    const m = /^([A-Za-z]+)=(\d+)$/.exec(item);
    if (!m || !(m[1] as string in DEFAULT_PARAMS)) {
      throw new BlksnapError('EINVAL', `--param must be NAME=NUMBER with NAME one of ${Object.keys(DEFAULT_PARAMS).join(', ')}; got "${item}"`);
    }
    params[m[1] as keyof ModuleParams] = Number(m[2]);
  }
  try {
    resolveParams(params); // the engine's own range checks, before anything starts
  } catch (err) {
    throw new BlksnapError('EINVAL', `--param: ${err instanceof Error ? err.message : String(err)}`);
  }
  return params;
}

export async function runDaemonCommand(values: OptionValues, stderr: (text: string) => void): Promise<void> {
  const driver = optString(values, 'driver') ?? 'auto';
  if (driver !== 'auto' && driver !== 'kernel' && driver !== 'embedded') {
    throw new BlksnapError('EINVAL', `--driver must be auto, kernel or embedded; got "${driver}"`);
  }
  const quiet = values.quiet === true;
  const exitWhen =
    values['exit-with-parent'] === true
      ? new Promise<void>((resolve) => {
          process.stdin.on('end', resolve);
          process.stdin.on('close', resolve);
          process.stdin.on('error', () => resolve());
          process.stdin.resume();
        })
      : undefined;
  // loaded here, not at startup: the helper (engines, drivers, koffi) is not what a client command needs
  const { runDaemon } = await import('../helper/daemon.js');
  await runDaemon({
    socketPath: optString(values, 'socket') ?? defaultSocketPath(),
    stateDir: optString(values, 'state-dir') ?? defaultStateDir(),
    driver: driver as DriverChoice,
    engineParams: parseParams(optList(values, 'param')),
    ...(exitWhen ? { exitWhen } : {}),
    log: quiet ? () => {} : (message) => stderr(`${new Date().toISOString()} blksnap-manager-helper: ${message}\n`),
  });
}
