import type { BlockDevice } from '../core/block-device.js';

/** One entry of NBD_OPT_LIST. */
export interface ExportEntry {
  name: string;
  description?: string;
}

/**
 * Where the NBD server finds its exports. Asked at every NBD_OPT_LIST / INFO / GO,
 * so exports may appear and disappear (engine devices, snapshot images).
 */
export interface ExportSource {
  list(): ExportEntry[];
  /** The device behind an export, or undefined when there is no such export. */
  open(name: string): BlockDevice | undefined;
}

/** A fixed set of devices, exported under their own names. */
export function staticExports(devices: readonly BlockDevice[], descriptions: Record<string, string> = {}): ExportSource {
  const byName = new Map(devices.map((d) => [d.name, d]));
  return {
    list: () =>
      devices.map((d) => {
        const description = descriptions[d.name];
        return description === undefined ? { name: d.name } : { name: d.name, description };
      }),
    open: (name) => byName.get(name),
  };
}
