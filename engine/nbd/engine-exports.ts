import type { BlockDevice } from '../core/block-device.js';
import type { EmbeddedEngineApi } from '../core/embedded-api.js';
import type { ExportEntry, ExportSource } from './export-source.js';
import { readOnlyView } from './read-only-view.js';

export interface EngineExportsOptions {
  /**
   * Export snapshot images writable (blksnap images accept writes, which go to
   * the difference storage). Default false: images are exported READ_ONLY.
   */
  writableImages?: boolean;
}

/**
 * The exports of an embedded engine: every engine device (writable, tracked and
 * copied-on-write) under its name, and every snapshot image (read-only) under
 * its "blksnap-imageN" name, read-only unless asked otherwise. Asked afresh at each negotiation, so images appear
 * at snapshotTake and vanish at snapshotDestroy.
 */
export function engineExports(
  engine: Pick<EmbeddedEngineApi, 'listDevices' | 'listImages' | 'device' | 'image'>,
  options: EngineExportsOptions = {},
): ExportSource {
  const writableImages = options.writableImages ?? false;
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
      if (engine.listImages().some((i) => i.name === name)) {
        const image = engine.image(name);
        return writableImages ? image : readOnlyView(image);
      }
      if (engine.listDevices().some((d) => d.name === name)) return engine.device(name);
      return undefined;
    },
  };
}
