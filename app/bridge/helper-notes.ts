/**
 * What `npm start` tells the administrator about the helper it uses: it outlives the
 * app (Ctrl+C stops only the app), the CLI reaches it without flags, how to stop it,
 * and where the lab disks are.
 */
import { join } from 'node:path';

export interface HelperPlaces {
  socketPath: string;
  stateDir: string;
  /** True when the socket is the default one (the CLI then needs no --socket). */
  defaultSocket: boolean;
}

/** Shell-quotes a path for a command line the user may paste. */
function quote(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}

export function helperNotes(places: HelperPlaces): string[] {
  const socketFlag = places.defaultSocket ? '' : ` --socket ${quote(places.socketPath)}`;
  return [
    `The helper listens on ${places.socketPath} and keeps running after Ctrl+C,`,
    `so the command line reaches it too: npx blksnap-manager devices${socketFlag}`,
    `Stop the helper with: kill $(cat ${quote(join(places.stateDir, 'helper.pid'))})`,
    `Lab disks are stored in ${join(places.stateDir, 'lab')} (the helper's log: ${join(places.stateDir, 'helper.log')}).`,
  ];
}
