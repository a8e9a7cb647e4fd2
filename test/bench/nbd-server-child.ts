/**
 * Our NBD server in a process of its own for the benches, as in production (the
 * helper's process) and as nbdkit runs: the bench process spawns the clients and
 * times them, and the server's CPU is read from /proc like nbdkit's.
 *
 * Child side (run with `--import tsx`): serves an embedded-engine device on
 * `<dir>/ours.sock` and, when asked, the same image as a plain file device on
 * `<dir>/plain.sock`; takes and destroys snapshots on request (IPC messages).
 * Parent side: startServerChild().
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { unixUri } from '../../engine/nbd/uri.js';
import type { SpinStats } from '../../engine/nbd/idle-spin.js';

export interface ChildConfig {
  image: string;
  /** Export name of the engine device. */
  name: string;
  dir: string;
  /** Also serve the image as a plain file device (export "file", plain.sock). */
  plain: boolean;
}

type Request = { cmd: 'snapshot'; storage: string; limitSectors: number } | { cmd: 'destroy' } | { cmd: 'stats' } | { cmd: 'close' };
/** The engine server's counts the bench reads around its timed rounds. */
export interface ServerCounts {
  /** Idle spins (engine/nbd/idle-spin.ts). */
  spin: SpinStats;
  /** WRITE payloads written to the image by the threads that received them (docs/nbd.md, "Writing on the receiving thread"). */
  receiverWrites: number;
  /** WRITEs those threads served themselves, going on as streams after one (docs/nbd.md, "Streams of WRITEs"). */
  streamedWrites: number;
}

type Reply = { ok: true; image?: string; counts?: ServerCounts } | { ok: false; error: string };

export interface ServerChild {
  pid: number;
  /** nbd+unix URI of an export of the engine server (the device or a snapshot image). */
  uriFor(exportName: string): string;
  /** nbd+unix URI of the plain file device (config.plain). */
  plainUri(): string;
  /** Creates a snapshot of the device, takes it; resolves to the image's export name. */
  takeSnapshot(storage: string, limitSectors: number): Promise<string>;
  destroySnapshot(): Promise<void>;
  /** The engine server's counts so far. */
  counts(): Promise<ServerCounts>;
  close(): Promise<void>;
}


export async function startServerChild(config: ChildConfig): Promise<ServerChild> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [JSON.stringify(config)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  child.on('message', (m) => waiting.shift()?.resolve(m as Reply));
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      for (const w of waiting.splice(0)) w.reject(new Error(`the server process exited (${code})`));
      resolve();
    }),
  );
  const ask = (req: Request | null): Promise<Reply> =>
    new Promise((resolve, reject) => {
      waiting.push({ resolve, reject });
      if (req !== null) child.send(req);
    });
  const ready = await ask(null); // the child's first message
  if (!ready.ok) throw new Error(`the server process did not start: ${ready.error}`);
  const check = (r: Reply): Reply & { ok: true } => {
    if (!r.ok) throw new Error(r.error);
    return r;
  };
  return {
    pid: child.pid ?? -1,
    uriFor: (name) => unixUri(name, join(config.dir, 'ours.sock')),
    plainUri: () => unixUri('file', join(config.dir, 'plain.sock')),
    takeSnapshot: async (storage, limitSectors) => check(await ask({ cmd: 'snapshot', storage, limitSectors })).image ?? '',
    destroySnapshot: async () => void check(await ask({ cmd: 'destroy' })),
    counts: async () => check(await ask({ cmd: 'stats' })).counts ?? { spin: { spins: 0, hits: 0 }, receiverWrites: 0, streamedWrites: 0 },
    close: async () => {
      child.send({ cmd: 'close' } satisfies Request);
      await exited;
    },
  };
}

async function childMain(config: ChildConfig): Promise<void> {
  const { createEmbeddedEngine } = await import('../../engine/core/index.js');
  const { engineExports } = await import('../../engine/nbd/engine-exports.js');
  const { staticExports } = await import('../../engine/nbd/export-source.js');
  const { NbdServer } = await import('../../engine/nbd/server.js');
  const { FileDevice } = await import('../helpers/file-device.js');
  const send = (r: Reply): void => void process.send?.(r);
  const engine = createEmbeddedEngine();
  await engine.addDevice({ path: config.image, name: config.name });
  const ours = new NbdServer({ exports: engineExports(engine), unixSocket: join(config.dir, 'ours.sock') });
  await ours.start();
  const fileDevice = config.plain ? await FileDevice.open(config.image, { name: 'file' }) : null;
  const plain = fileDevice === null ? null : new NbdServer({ exports: staticExports([fileDevice]), unixSocket: join(config.dir, 'plain.sock') });
  await plain?.start();
  let snapshot: string | null = null;
  process.on('message', (m: Request) => {
    void (async () => {
      try {
        if (m.cmd === 'snapshot') {
          const id = await engine.snapshotCreate({ diffStoragePath: m.storage, limitSectors: m.limitSectors });
          await engine.snapshotAdd(id, config.name);
          await engine.snapshotTake(id);
          snapshot = id;
          send({ ok: true, image: engine.listImages()[0]?.name ?? '' });
        } else if (m.cmd === 'stats') {
          const stats = ours.stats();
          send({ ok: true, counts: { spin: stats.spin, receiverWrites: stats.receivers.writes, streamedWrites: stats.receivers.streamedWrites } });
        } else if (m.cmd === 'destroy') {
          if (snapshot !== null) await engine.snapshotDestroy(snapshot);
          snapshot = null;
          send({ ok: true });
        } else {
          await ours.close();
          await plain?.close();
          await fileDevice?.close();
          await engine.close();
          process.exit(0);
        }
      } catch (err) {
        send({ ok: false, error: err instanceof Error ? err.message : String(err) });
      }
    })();
  });
  // The parent going away takes this process with it.
  process.on('disconnect', () => process.exit(0));
  send({ ok: true });
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send !== undefined) {
  const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
  childMain(config).catch((err: unknown) => {
    process.send?.({ ok: false, error: err instanceof Error ? err.message : String(err) } satisfies Reply);
    process.exit(1);
  });
}
