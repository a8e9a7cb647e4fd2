/**
 * Growing a held snapshot's difference storage through the helper: the embedded
 * engine raises its limit; the kernel driver on VAL-7.0 appends a new file, created
 * next to the storage with the caller's rights, recorded in the ledger, and removed
 * with the snapshot (docs/kernel-driver.md, "Grow on VAL-7").
 */
import { BlksnapError } from '../abi/errno.js';
import type { BlksnapDriver } from '../abi/driver.js';
import type { SnapshotId } from '../abi/types.js';
import type { EmbeddedEngineApi } from '../core/embedded-api.js';
import type { CallerFs } from './caller-fs.js';
import type { SnapshotBook } from './snapshot-book.js';
import type { StorageIdentity, StorageLedger } from './storage-ledger.js';

export interface GrowDeps {
  engine: EmbeddedEngineApi | null;
  driver: BlksnapDriver;
  book: SnapshotBook;
  files: CallerFs;
  ledger: StorageLedger | null;
  /** The user the helper works for (the ledger's owner of the file). */
  uid: number;
  /** Removes a file the helper created (service.removeCreated), after a failed grow. */
  remove: (path: string, identity: StorageIdentity) => void;
}

/** True when storageGrow can work with this driver (the hello capability). */
export function canGrow(engine: EmbeddedEngineApi | null, driver: BlksnapDriver): boolean {
  return engine !== null || driver.canGrowStorage === true;
}

/** The next free grow-file name next to the storage: `<storage>.grow-N`. */
function growPath(storagePath: string, taken: number): string {
  return `${storagePath}.grow-${taken + 1}`;
}

/** Raises the storage of snapshot `id` by `sectors` and records the new limit. */
export async function growStorage(deps: GrowDeps, id: SnapshotId, sectors: number): Promise<void> {
  const { engine, driver, book } = deps;
  if (engine) {
    await engine.storageGrow(id, sectors);
    const rec = book.get(id);
    if (rec && rec.limitSectors !== null) rec.limitSectors += sectors;
    return;
  }
  if (!driver.storageGrowFile || driver.canGrowStorage !== true) {
    throw new BlksnapError(
      'EOPNOTSUPP',
      "this kernel module cannot grow a held snapshot's difference storage (only VAL-7's veeamblksnap has append_storage); destroy the snapshot and create it with a larger limit",
    );
  }
  const rec = book.get(id);
  if (!rec?.storagePath) throw new BlksnapError('ESRCH', `snapshot ${id} was not created by this helper: its storage is unknown here`);
  if ((rec.storageForm ?? 'new-file') !== 'new-file') {
    throw new BlksnapError(
      'EOPNOTSUPP',
      `the difference storage of snapshot ${id} is ${rec.storageForm === 'block-device' ? 'a block device' : rec.storageForm === 'directory' ? 'an unnamed file' : 'an existing file'}, which the module fills itself up to the limit given at create: only a new file can grow`,
    );
  }
  const grown = rec.growFiles ?? [];
  const path = growPath(rec.storagePath, grown.length);
  const created = await deps.files.createFile(path, 'grown difference storage', (pending) =>
    deps.ledger ? deps.ledger.recordPending(pending, 'storage-grow', id, deps.uid) : Promise.resolve(),
  );
  const identity: StorageIdentity = { dev: created.dev, ino: created.ino, dirDev: created.dirDev, dirIno: created.dirIno, uid: deps.uid };
  try {
    await deps.ledger?.settle(created.path, created);
    // the driver takes the descriptor over: held open until destroy, closed on failure
    await driver.storageGrowFile(id, created.fd, created.path, sectors);
  } catch (err) {
    try {
      deps.remove(created.path, identity);
    } finally {
      await deps.ledger?.forget(created.path).catch(() => undefined);
    }
    throw err;
  }
  rec.growFiles = [...grown, { path: created.path, identity }];
  if (rec.limitSectors !== null) rec.limitSectors += sectors;
}
