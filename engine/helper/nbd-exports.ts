/**
 * The embedded engine's NBD exports: every engine device (read-write, writes go
 * through the tracker and copy-on-write) and every snapshot image (read-only), on a
 * Unix socket in the helper's private directory.
 */
import type { EmbeddedEngineApi } from '../core/embedded-api.js';
import type { BlockDevice } from '../core/block-device.js';
import { NbdServer } from '../nbd/server.js';
import type { ExportSource } from '../nbd/export-source.js';
import type { NbdUris } from './backends.js';
import type { Owner } from './owner.js';
import { handOverSocket } from './socket-dir.js';

export interface NbdExports extends NbdUris {
  close(): Promise<void>;
}

/** The engine's devices and images, and `extra` exports (browsed backup points). */
export function engineExportSource(engine: EmbeddedEngineApi, extra?: ExportSource): ExportSource {
  return {
    list: () => [
      ...engine.listDevices().map((d) => ({ name: d.name, description: `engine device (${d.path})` })),
      ...engine.listImages().map((i) => ({ name: i.name, description: `snapshot image of ${i.device}` })),
      ...(extra?.list() ?? []),
    ],
    open: (name): BlockDevice | undefined => {
      if (engine.listDevices().some((d) => d.name === name)) return engine.device(name);
      if (engine.listImages().some((i) => i.name === name)) return engine.image(name);
      return extra?.open(name);
    },
  };
}

export async function startNbdExports(
  engine: EmbeddedEngineApi,
  socketPath: string,
  owner: Owner,
  log: (message: string) => void,
  extra?: ExportSource,
): Promise<NbdExports> {
  const server = new NbdServer({ exports: engineExportSource(engine, extra), unixSocket: socketPath, log });
  await server.start();
  try {
    await handOverSocket(socketPath, owner);
  } catch (err) {
    await server.close();
    throw err;
  }
  return {
    socketPath,
    uriFor: (name) => server.uriFor(name, 'unix'),
    close: () => server.close(),
  };
}
