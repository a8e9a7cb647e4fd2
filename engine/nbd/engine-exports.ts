import type { SnapshotId } from '../abi/types.js';
import type { BlockDevice } from '../core/block-device.js';
import type { EmbeddedEngineApi } from '../core/embedded-api.js';
import type { ExportEntry, ExportSource } from './export-source.js';
import { readOnlyView } from './read-only-view.js';

export interface EngineExportsOptions {
  /**
   * Which snapshot images are exported writable (blksnap images accept writes, which
   * go to the difference storage): true for all, or asked per snapshot at each open.
   * Default false: every image is exported READ_ONLY and refuses writes.
   */
  writableImages?: boolean | ((snapshotId: SnapshotId) => boolean);
}

/**
 * The exports of an embedded engine: every engine device (writable, tracked and
 * copied-on-write) under its name, and every snapshot image under its
 * "blksnap-imageN" name, read-only unless asked otherwise. Asked afresh at each
 * negotiation, so images appear at snapshotTake and vanish at snapshotDestroy.
 * `open(name).readOnly` is what the server advertises (NBD_FLAG_READ_ONLY) and
 * enforces; listings ask the same.
 */
export function engineExports(
  engine: Pick<EmbeddedEngineApi, 'listDevices' | 'listImages' | 'device' | 'image'>,
  options: EngineExportsOptions = {},
): ExportSource {
  const option = options.writableImages ?? false;
  const writable = typeof option === 'function' ? option : (): boolean => option;
  return {
    list(): ExportEntry[] {
      const devices = engine.listDevices().map((d) => ({
        name: d.name,
        description: `engine device ${d.path}${d.snapshotId === null ? '' : ` (in snapshot ${d.snapshotId})`}`,
      }));
      const images = engine.listImages().map((i) => ({
        name: i.name,
        description: `snapshot image of ${i.device} (snapshot ${i.snapshotId})`,
      }));
      return [...devices, ...images];
    },
    open(name: string): BlockDevice | undefined {
      const info = engine.listImages().find((i) => i.name === name);
      if (info) {
        const image = engine.image(name);
        return writable(info.snapshotId) ? image : readOnlyView(image);
      }
      if (engine.listDevices().some((d) => d.name === name)) return engine.device(name);
      return undefined;
    },
  };
}
