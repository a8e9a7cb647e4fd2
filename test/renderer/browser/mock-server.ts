/**
 * A stand-in for the browser-mode server (app/web) for the renderer's browser smoke
 * test: serves a built renderer with a strict CSP and speaks the wire format of
 * app/shared/wire.ts over /ws?token=..., with a small in-memory fake of the contract.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import type { EventMap, EventName, RequestName } from '../../../app/shared/contract.js';
import { encodeBase64 } from '../../../app/shared/base64.js';
import { err, ok } from '../../../app/shared/result.js';
import type { Result } from '../../../app/shared/result.js';
import type { DeviceEntry, EventHistoryEntry, SnapshotEntry, SnapshotEventEntry } from '../../../app/shared/types.js';
import { validateParams } from '../../../app/shared/validate.js';
import { WS_CLOSE_UNAUTHORIZED, encodeEvent, encodeResponse, parseClientMessage } from '../../../app/shared/wire.js';

const MiB = 1024 * 1024;
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
};

export interface MockServer {
  url: string;
  port: number;
  calls: { method: string; params: unknown }[];
  emit<K extends EventName>(event: K, payload: EventMap[K]): void;
  close(): Promise<void>;
}

export const CBT_BLOCKS = 2_097_152;

function lab(name: string, size: number): DeviceEntry {
  return {
    id: name,
    name,
    path: `/var/lib/blksnap-lab/${name}.img`,
    kind: 'engine',
    sizeBytes: size,
    model: 'lab disk',
    fstype: '',
    mountpoints: [],
    tracked: false,
    snapshotId: null,
    nbdUri: `nbd://127.0.0.1:10809/${name}`,
    blockedBy: [],
    labDisk: true,
    type: 'engine',
    label: '',
    parents: [],
    partitions: [],
    bypass: [],
  };
}

export async function startMockServer(distDir: string, token: string): Promise<MockServer> {
  const devices: DeviceEntry[] = [lab('disk1', 1024 * MiB)];
  const snapshots: SnapshotEntry[] = [];
  const calls: { method: string; params: unknown }[] = [];
  const map = new Uint8Array(CBT_BLOCKS);
  for (let i = 0; i < CBT_BLOCKS; i += 1031) map[i] = 1 + (i % 3);
  for (let i = 1_000_000; i < 1_050_000; i++) map[i] = 3;
  const mapData = encodeBase64(map);
  const clients = new Set<WebSocket>();
  let imageNo = 0;

  /** The events kept per snapshot, like the helper's events.history (oldest snapshot first here). */
  const history = new Map<string, EventHistoryEntry>();
  function keep(event: SnapshotEventEntry): void {
    const entry = history.get(event.snapshotId) ?? { snapshotId: event.snapshotId, name: null, endedMs: null, dropped: 0, events: [] };
    entry.events.push(event);
    history.set(event.snapshotId, entry);
  }

  function broadcast<K extends EventName>(event: K, payload: EventMap[K]): void {
    if (event === 'onSnapshotEvent') keep(payload as SnapshotEventEntry);
    const frame = encodeEvent(event, payload);
    for (const c of clients) c.send(frame);
  }

  let allocation: { directory: string; limitBytes: number } | null = null;
  function handle(method: RequestName, params: unknown): Result<unknown> {
    const checked = validateParams(method, params);
    if (!checked.ok) return checked;
    const p = checked.value as Record<string, unknown> | undefined;
    switch (method) {
      case 'getStatus':
      case 'reconnect':
        return ok({
          driver: 'embedded',
          driverVersion: { major: 1, minor: 0, revision: 0, build: 0 },
          appVersion: '0.1.0',
          protocolVersion: 1,
          capabilities: ['cbt-active-table'],
          helper: { state: 'connected' },
        });
      case 'listDevices':
        return ok(devices);
      case 'createLabDisk': {
        const name = String(p?.['name']);
        if (devices.some((d) => d.id === name)) return err('EEXIST', `A device named ${name} exists.`);
        const d = lab(name, Number(p?.['sizeBytes']));
        devices.push(d);
        return ok(d);
      }
      case 'getStorageAllocation':
        return ok(allocation);
      case 'setStorageAllocation': {
        allocation = { directory: String(p?.['directory']), limitBytes: Number(p?.['limitBytes']) };
        return ok(allocation);
      }
      case 'listFilesystems':
        return ok([
          { mountpoint: '/', source: '/dev/vda1', fstype: 'ext4', totalBytes: 100 * 1024 * MiB, freeBytes: 60 * 1024 * MiB },
          { mountpoint: '/var/tmp', source: '/dev/vda2', fstype: 'ext4', totalBytes: 20 * 1024 * MiB, freeBytes: 15 * 1024 * MiB },
        ]);
      case 'snapshotCreate': {
        const id = `0000000${snapshots.length + 1}-aaaa-4bbb-8ccc-dddddddddddd`;
        const ids = p?.['devices'] as string[];
        for (const dev of ids) {
          const d = devices.find((x) => x.id === dev);
          if (!d) return err('ENOENT', `No device ${dev}.`);
          d.snapshotId = id;
          d.tracked = true;
        }
        snapshots.push({
          id,
          state: 'created',
          writableImages: p?.['writableImages'] === true,
          devices: ids.map((device) => ({ device, errorCode: 0, errorName: '', image: '', imageNbdUri: null })),
          storage: { path: String(p?.['storagePath']), limitBytes: Number(p?.['limitBytes']), allocatedBytes: 0, usedBytes: 0 },
        });
        return ok({ snapshotId: id });
      }
      case 'snapshotTake': {
        const s = snapshots.find((x) => x.id === p?.['snapshotId']);
        if (!s) return err('ESRCH', 'No such snapshot.');
        if (s.state !== 'created') return err('EALREADY', 'Already taken.');
        s.state = 'taken';
        for (const d of s.devices) {
          d.image = `blksnap-image${imageNo++}`;
          d.imageNbdUri = `nbd://127.0.0.1:10809/${d.image}`;
        }
        if (s.storage) s.storage = { ...s.storage, allocatedBytes: 64 * MiB, usedBytes: 12 * MiB };
        return ok(null);
      }
      case 'snapshotDestroy': {
        const i = snapshots.findIndex((x) => x.id === p?.['snapshotId']);
        if (i < 0) return err('ESRCH', 'No such snapshot.');
        snapshots.splice(i, 1);
        const kept = history.get(String(p?.['snapshotId']));
        if (kept) kept.endedMs = Date.now();
        for (const d of devices) if (d.snapshotId === p?.['snapshotId']) d.snapshotId = null;
        return ok(null);
      }
      case 'listSnapshots':
        return ok(snapshots);
      case 'listEventHistory':
        return ok([...history.values()].reverse());
      case 'dismissEventHistory':
        return history.delete(String(p?.['snapshotId'])) ? ok(null) : err('ESRCH', 'No event history for that snapshot.');
      case 'cbtInfo':
      case 'cbtMap': {
        const info = {
          device: String(p?.['device']),
          capacityBytes: CBT_BLOCKS * 4096,
          blockSize: 4096,
          blockCount: CBT_BLOCKS,
          generationId: '5e1f3a6c-9b2d-4c7e-8f10-1234567890ab',
          changesNumber: 3,
        };
        if (method === 'cbtInfo') return ok(info);
        // The active table (live view, the default): the same bytes, the 3s being the
        // writes since take 2 (so "changed since the last snapshot" is N = 2 in both views).
        if (p?.['table'] === 'active') return ok({ ...info, changesNumber: 2, table: 'active', activeNumber: 3, encoding: 'base64', data: mapData });
        return ok({ ...info, table: 'snapshot', activeNumber: 4, encoding: 'base64', data: mapData });
      }
      case 'workloadStart':
        broadcast('onWorkloadProgress', {
          device: String(p?.['device']),
          running: true,
          pattern: 'random',
          rateMiBps: Number(p?.['rateMiBps']),
          actualMiBps: 3.97,
          bytesWritten: 5 * MiB,
          writes: 80,
          elapsedMs: 1200,
        });
        return ok(null);
      case 'jobsList':
        return ok([]);
      case 'workloadStop':
      case 'removeImage':
      case 'addImage':
      case 'backupPlan':
      case 'backupStart':
      case 'backupVerify':
      case 'backupRestore':
      case 'backupCatalog':
      case 'backupExport':
      case 'backupUnexport':
      case 'jobsCancel':
      case 'jobsWait':
      case 'snapshotGrowStorage':
        return err('EOPNOTSUPP', `${method} is not in the mock.`);
    }
  }

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const path = normalize(decodeURIComponent((req.url ?? '/').split(/[?#]/)[0] ?? '/'));
      const file = join(distDir, path === '/' ? 'index.html' : path);
      if (!file.startsWith(distDir)) {
        res.writeHead(403).end();
        return;
      }
      try {
        const body = await readFile(file);
        res.writeHead(200, {
          'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
          'content-security-policy':
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        });
        res.end(body);
      } catch {
        res.writeHead(404).end();
      }
    })();
  });

  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws') {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (url.searchParams.get('token') !== token) {
        ws.close(WS_CLOSE_UNAUTHORIZED, 'unauthorized');
        return;
      }
      clients.add(ws);
      ws.send(encodeEvent('onHelperState', { state: 'connected' }));
      ws.on('close', () => clients.delete(ws));
      ws.on('message', (data) => {
        const parsed = parseClientMessage(String(data));
        if (!parsed.ok) {
          if (parsed.id !== null) ws.send(encodeResponse(parsed.id, err('PROTOCOL', parsed.reason)));
          return;
        }
        calls.push({ method: parsed.request.method, params: parsed.request.params });
        ws.send(encodeResponse(parsed.request.id, handle(parsed.request.method, parsed.request.params)));
      });
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    calls,
    emit: broadcast,
    async close() {
      for (const c of clients) c.terminate();
      wss.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
