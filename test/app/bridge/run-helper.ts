/**
 * Test fixture: runs the real helper daemon (engine/helper) from the sources, with
 * the same options as `blksnap-manager daemon`, so app tests do not depend on a
 * build. Usage: node --import tsx test/app/bridge/run-helper.ts --socket P --state-dir D
 */
import { parseArgs } from 'node:util';
import { runDaemon } from '../../../engine/helper/daemon.js';

const { values } = parseArgs({
  options: { socket: { type: 'string' }, 'state-dir': { type: 'string' }, driver: { type: 'string' } },
});
const socketPath = values.socket;
const stateDir = values['state-dir'];
if (socketPath === undefined || stateDir === undefined) {
  process.stderr.write('usage: run-helper --socket PATH --state-dir DIR\n');
  process.exit(2);
}
await runDaemon({
  socketPath,
  stateDir,
  driver: 'embedded',
  log: (message) => process.stderr.write(`helper: ${message}\n`),
});
