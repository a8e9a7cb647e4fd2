/**
 * The embedded engine's NBD exports (engine/nbd engineExports: every engine device
 * read-write, every snapshot image read-only unless its snapshot was created with
 * writable images), on a Unix socket in the helper's private directory; with the
 * kernel driver, a server of the browsed backup points alone.
 */
import type { SnapshotId } from '../abi/types.js';
import type { EmbeddedEngineApi } from '../core/embedded-api.js';
import { engineExports } from '../nbd/engine-exports.js';
import { NbdServer } from '../nbd/server.js';
import type { ExportSource } from '../nbd/export-source.js';
import type { NbdUris } from './backends.js';
import type { Owner } from './owner.js';
import { handOverSocket } from './socket-dir.js';

export interface NbdExports extends NbdUris {
  close(): Promise<void>;
}

/** The exports of `first`, then those of `then` (browsed backup points). */
function joinSources(first: ExportSource, then: ExportSource): ExportSource {
  return {
    list: () => [...first.list(), ...then.list()],
    open: (name) => first.open(name) ?? then.open(name),
  };
}

/** Serves `exports` on a Unix socket handed over to the owner. */
async function serve(exports: ExportSource, socketPath: string, owner: Owner, log: (message: string) => void): Promise<NbdExports> {
  // owner-only whatever the process umask (the daemon's is 077 anyway)
  const server = new NbdServer({ exports, unixSocket: socketPath, log, unixSocketMode: 0o600 });
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
    // the device a client opening the export now would get: its readOnly is what the server advertises
    readOnly: (name) => exports.open(name)?.readOnly ?? null,
    close: () => server.close(),
  };
}

/**
 * With the kernel driver there is no engine to export: an NBD server for the browsed
 * backup points alone (read-only BlockDevices of the qcow2/raw reader).
 */
export function startBrowseExports(socketPath: string, owner: Owner, log: (message: string) => void, browsed: ExportSource): Promise<NbdExports> {
  return serve(browsed, socketPath, owner, log);
}

export async function startNbdExports(
  engine: EmbeddedEngineApi,
  socketPath: string,
  owner: Owner,
  log: (message: string) => void,
  /** Whether the images of a snapshot are exported writable (asked at each client's open). */
  writableImages: (snapshotId: SnapshotId) => boolean,
  /** More exports served beside the engine's (browsed backup points). */
  extra?: ExportSource,
): Promise<NbdExports> {
  const engineSource = engineExports(engine, { writableImages });
  const exports = extra ? joinSources(engineSource, extra) : engineSource;
  return serve(exports, socketPath, owner, log);
}
