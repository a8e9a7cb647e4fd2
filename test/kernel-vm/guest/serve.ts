/**
 * The UI screenshot's guest program (vmmode=serve): gives /dev/vda a CBT map with
 * three change numbers through the real VAL-7.0 module (writes between three takes),
 * then runs the helper (kernel driver) and forwards TCP port 7000 to its socket, so
 * the host's browser mode can show it. A connection to port 7001 ends it.
 */
import { createServer, connect } from 'node:net';
import type { Socket } from 'node:net';
import { createKernelDriver } from '../../../engine/kernel/index.js';
import { startDaemon } from '../../../engine/helper/index.js';
import { MiB, writeRandom } from './block-io.js';

const ORIGINAL = '/dev/vda';
const SOCKET = '/tmp/helper.sock';

function pipeBoth(a: Socket, b: Socket): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
}

async function main(): Promise<void> {
  const driver = createKernelDriver();
  await driver.attach(ORIGINAL);
  // change number 1 before the first take, 2 and 3 between the takes
  const rounds: [number, number][][] = [
    [[2 * MiB, 4 * MiB]],
    [[10 * MiB, 2 * MiB], [20 * MiB, MiB]],
    [[14 * MiB, 3 * MiB], [28 * MiB, MiB / 2]],
  ];
  for (const [i, writes] of rounds.entries()) {
    for (const [offset, length] of writes) await writeRandom(ORIGINAL, offset, length);
    const id = await driver.snapshotCreate({ diffStoragePath: `/work/diff-serve-${i}`, limitSectors: (16 * MiB) / 512 });
    await driver.snapshotAdd(id, ORIGINAL);
    await driver.snapshotTake(id);
    await driver.snapshotDestroy(id);
  }
  await driver.close();

  const daemon = await startDaemon({ socketPath: SOCKET, stateDir: '/work/state', driver: 'kernel', log: (m) => process.stdout.write(`VMLOG helper: ${m}\n`) });
  const forward = createServer((client) => pipeBoth(client, connect(SOCKET))).listen(7000, '0.0.0.0');
  process.stdout.write('VMLOG serving\n');
  await new Promise<void>((resolve) => {
    const stop = createServer((c) => {
      c.end();
      stop.close();
      resolve();
    }).listen(7001, '0.0.0.0');
  });
  forward.close();
  await daemon.close();
}

await main();
