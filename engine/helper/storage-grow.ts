/** Growing a held snapshot's difference storage through the helper (embedded engine only). */
import { BlksnapError } from '../abi/errno.js';
import type { SnapshotId } from '../abi/types.js';
import type { EmbeddedEngineApi } from '../core/embedded-api.js';
import type { SnapshotBook } from './snapshot-book.js';

/**
 * Raises the limit of snapshot `id` by `sectors` and records the new limit. EOPNOTSUPP
 * with the kernel driver (no append_storage in the module this helper drives).
 */
export async function growStorage(
  engine: EmbeddedEngineApi | null,
  book: SnapshotBook,
  id: SnapshotId,
  sectors: number,
): Promise<void> {
  if (engine === null) {
    throw new BlksnapError(
      'EOPNOTSUPP',
      "the kernel module cannot grow a held snapshot's difference storage; destroy the snapshot and create it with a larger limit",
    );
  }
  await engine.storageGrow(id, sectors);
  const rec = book.get(id);
  if (rec && rec.limitSectors !== null) rec.limitSectors += sectors;
}
