/**
 * The helper daemon: picks the driver, opens registered images (embedded engine),
 * exports them over NBD, and serves the helper protocol on a Unix socket in a
 * private directory. runDaemon() adds SIGTERM/SIGINT handling and resolves once
 * the helper has shut down cleanly.
 */
import { closeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { BlksnapDriver } from '../abi/driver.js';
import type { EmbeddedEngineApi } from '../core/embedded-api.js';
import type { ModuleParams } from '../core/params.js';
import { escapeControlChars } from '../protocol/control-chars.js';
import type { NotificationName, NotificationParams } from '../protocol/methods.js';
import type { HelperBackends, ImageRegistry, NbdUris } from './backends.js';
import { listBlockDevices, openImageRegistry } from './devices-wiring.js';
import { chooseDriverKind, createEmbeddedDriver, createKernelDriver } from './driver-select.js';
import { detectKernelModule } from '../kernel/detect.js';
import type { DriverChoice } from './driver-select.js';
import { EventHistoryStore } from './event-history.js';
import { eventLogLine } from './event-log.js';
import { BackupExports } from './backup-exports.js';
import { startBrowseExports, startNbdExports } from './nbd-exports.js';
import type { NbdExports } from './nbd-exports.js';
import { resolveOwner } from './owner.js';
import type { Owner } from './owner.js';
import { HelperServer } from './server.js';
import { HelperService } from './service.js';
import { SettingsStore } from './settings-store.js';
import { SnapshotMetaStore } from './snapshot-meta.js';
import { handOverSocket, prepareSocketDir, removeOwnSocket, removeStaleSocket, socketIdentity } from './socket-dir.js';
import { StorageLedger } from './storage-ledger.js';
import { CallerFs } from './caller-fs.js';
import { lockStateDir } from './state-lock.js';

export interface DaemonOptions {
  socketPath: string;
  stateDir: string;
  driver?: DriverChoice;
  /** Embedded engine module parameters (tests use small ones). */
  engineParams?: Partial<ModuleParams>;
  /** Default: PKEXEC_UID's user when started through pkexec, else ourselves. */
  owner?: Owner;
  log?: (message: string) => void;
  /** runDaemon also shuts down when this settles (e.g. the parent's pipe closed). */
  exitWhen?: Promise<unknown>;
}

export interface DaemonHandle {
  readonly socketPath: string;
  readonly driver: 'kernel' | 'embedded';
  readonly nbdSocketPath: string | null;
  /** Shuts down: snapshots of the embedded engine destroyed, storage removed, socket removed. */
  close(): Promise<void>;
}

function versionText(v: { major: number; minor: number; revision: number; build: number }): string {
  return `${v.major}.${v.minor}.${v.revision}.${v.build}`;
}

export async function startDaemon(options: DaemonOptions): Promise<DaemonHandle> {
  const sink = options.log;
  // names and paths in log lines may come from the system (lsblk, a file name): never raw control characters
  const log = sink ? (message: string): void => sink(escapeControlChars(message)) : (): void => {};
  // everything the helper creates (sockets, storage, state) is private to its owner
  process.umask(0o077);
  const owner = options.owner ?? resolveOwner();
  const socketDir = dirname(options.socketPath);
  await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
  await prepareSocketDir(socketDir, owner);
  await removeStaleSocket(options.socketPath);
  const lock = await lockStateDir(options.stateDir);
  try {
    return await startLocked(options, owner, socketDir, log, lock);
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function startLocked(
  options: DaemonOptions,
  owner: Owner,
  socketDir: string,
  log: (message: string) => void,
  lock: { release(): Promise<void> },
): Promise<DaemonHandle> {
  const settings = new SettingsStore(options.stateDir);
  await settings.load();
  const meta = new SnapshotMetaStore(options.stateDir);
  await meta.load();
  const history = new EventHistoryStore(options.stateDir);
  await history.load();

  const kernelModule = detectKernelModule();
  const kind = chooseDriverKind(options.driver ?? 'auto', kernelModule);
  let driver: BlksnapDriver;
  let engine: EmbeddedEngineApi | null = null;
  let images: ImageRegistry | null = null;
  let nbd: NbdExports | null = null;
  let browse: NbdExports | null = null;
  const ledger = new StorageLedger(options.stateDir, owner.uid);
  if (kind === 'kernel') {
    driver = await createKernelDriver(kernelModule);
  } else {
    // the embedded engine's snapshots died with a helper that was killed: remove their
    // files, and lab disks that never made it into the registry
    images = await openImageRegistry(options.stateDir);
    const registered = new Set((await images.list()).map((r) => r.path));
    await ledger.removeLeftovers(log, (rec) => registered.has(rec.path));
    engine = await createEmbeddedDriver(options.engineParams);
    driver = engine;
  }
  const server = new HelperServer();
  const backupExports = new BackupExports();
  let service: HelperService | null = null;
  try {
    const driverVersion = versionText(await driver.version());
    if (engine) {
      const files = new CallerFs(owner);
      images ??= await openImageRegistry(options.stateDir);
      for (const record of await images.list()) {
        try {
          // reopened with the rights of the user the helper works for, never by path as root
          const opened = files.openExisting(record.path, 'registered image', { write: true });
          try {
            await engine.addDevice({ path: record.path, name: record.name, openPath: `/proc/self/fd/${opened.fd}` });
          } finally {
            closeSync(opened.fd);
          }
        } catch (err) {
          const missing = (err as { errno?: unknown }).errno === 'ENOENT';
          log(
            `cannot open registered image ${record.name} (${record.path}): ` +
              (missing ? 'the file does not exist' : (err as Error).message) +
              '; it stays registered but unusable until the file is back (then restart the helper) or it is removed with "image remove"',
          );
        }
      }
      nbd = await startNbdExports(engine, join(socketDir, 'nbd.sock'), owner, log, (id) => service?.book.get(id)?.writableImages === true, backupExports);
    } else {
      // the kernel driver's images are block devices the system serves; browsed backup points need a server
      browse = await startBrowseExports(join(socketDir, 'nbd.sock'), owner, log, backupExports);
    }
    const uris: NbdUris | null = nbd;
    const backends: HelperBackends = {
      driver,
      engine,
      images,
      listBlockDevices,
      nbd: uris,
      driverVersion,
      kernelModule,
      owner,
      backupExports: nbd || browse ? backupExports : null,
      browseNbd: browse,
    };
    const broadcast = <N extends NotificationName>(topic: N, params: NotificationParams<N>): void => {
      // every snapshot event goes to the log too (the pump of each snapshot sees them all)
      if (topic === 'event') log(eventLogLine(params as NotificationParams<'event'>));
      server.broadcast(topic, params);
    };
    const started = new HelperService(backends, settings, broadcast, log, ledger, meta, history);
    service = started;
    server.attach(started);
    await started.adoptExisting();
    // names and times of snapshots that ended while no helper ran are dropped
    // their events stay (until dismissed), marked as ended
    const existing = await driver.snapshotCollect();
    await meta.keepOnly(existing);
    await history.endAllBut(existing);
    await server.listen(options.socketPath);
    await handOverSocket(options.socketPath, owner);
    const ownSocket = await socketIdentity(options.socketPath);
    log(`helper listening on ${options.socketPath} (driver ${kind} ${driverVersion}; kernel module: ${kernelModule.summary})`);

    let closing: Promise<void> | null = null;
    const close = (): Promise<void> => {
      closing ??= (async () => {
        // refuse new requests, answer pending snapshotWaitEvent calls (null), then close
        server.state.shuttingDown = true;
        await started.workloads.stopAll();
        await started.stopJobs();
        await started.stopPumps();
        if (engine) started.announceShutdownOfSnapshots();
        await server.close();
        await nbd?.close().catch((err: unknown) => log(`closing NBD exports: ${(err as Error).message}`));
        await browse?.close().catch((err: unknown) => log(`closing the browse NBD server: ${(err as Error).message}`));
        await backupExports.closeAll();
        if (engine) {
          // the embedded engine's snapshots live in this process: destroy them with it
          await driver.close().catch((err: unknown) => log(`closing the engine: ${(err as Error).message}`));
          await started.removeLeftoverStorage().catch((err: unknown) => log(`removing storage files: ${(err as Error).message}`));
        } else {
          await driver.close().catch(() => undefined);
        }
        // only our own socket: a helper started meanwhile may already listen at this path
        await removeOwnSocket(options.socketPath, ownSocket).catch(() => undefined);
        await history.settled();
        await lock.release();
        log('helper stopped');
      })();
      return closing;
    };
    return { socketPath: options.socketPath, driver: kind, nbdSocketPath: nbd?.socketPath ?? null, close };
  } catch (err) {
    // pumps adopted for existing (kernel) snapshots must not outlive a failed start
    await service?.stopPumps().catch(() => undefined);
    await server.close().catch(() => undefined);
    await nbd?.close().catch(() => undefined);
    await browse?.close().catch(() => undefined);
    await driver.close().catch(() => undefined);
    throw err;
  }
}

/** Runs until SIGTERM/SIGINT, then shuts down cleanly. */
export async function runDaemon(options: DaemonOptions): Promise<void> {
  const handle = await startDaemon(options);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      options.log?.(`${signal}: shutting down`);
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      void handle.close().then(resolve, resolve);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    void options.exitWhen?.finally(() => {
      options.log?.('parent gone: shutting down');
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      void handle.close().then(resolve, resolve);
    });
  });
}
