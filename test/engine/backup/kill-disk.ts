/** The disk of the kill test, made the same way in the test and in its child process. */
import { CbtDisk } from './cbt-disk.js';
import type { Take } from './cbt-disk.js';
import { MiB, KiB } from './sparse-data.js';

export function killDisk(): { disk: CbtDisk; first: Take; second: Take } {
  const disk = new CbtDisk(64 * KiB, 64 * MiB, 99);
  const first = disk.take();
  disk.changeBlocks(0.3, 98);
  const second = disk.take();
  return { disk, first, second };
}
