/**
 * Child process for the kill test: an incremental backup of the CbtDisk the test
 * made its full from, with a slow source, printing "progress DONE TOTAL" lines
 * until the parent kills it. Usage: backup-child.ts CHAIN_DIR
 */
import { backupPoint } from '../../../engine/backup/backup-point.js';
import { killDisk } from './kill-disk.js';

const dir = process.argv[2]!;
const { disk, second } = killDisk();
const slow = (offset: number, length: number): Promise<Buffer> =>
  new Promise((resolve) => setTimeout(() => resolve(Buffer.from(second.image.subarray(offset, offset + length))), 40));
await backupPoint({
  dir,
  source: slow,
  device: disk.device,
  cbt: second.cbt,
  cbtMap: second.cbtMap,
  kind: 'incremental',
  onProgress: (p) => process.stdout.write(`progress ${p.done} ${p.total}\n`),
});
process.stdout.write('done\n');
