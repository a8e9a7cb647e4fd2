/**
 * The helper as a process: every bad request gets a clear error while the helper
 * stays up; events reach every subscribed client; SIGTERM cleans up.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HelperClient } from '../../../engine/protocol/client.js';
import { decodeCbtMap } from '../../../engine/protocol/cbt-encoding.js';
import { MAX_IN_FLIGHT_PER_CLIENT, MAX_LINE_LENGTH } from '../../../engine/protocol/limits.js';
import { hasCommand, isRoot } from '../../helpers/env.js';
import { RawConnection, connectClient, spawnDaemon } from './spawn-daemon.js';
import type { SpawnedDaemon } from './spawn-daemon.js';

const UNKNOWN_ID = '0b7c1a52-8d7e-4c36-9a57-2f0f3bd0e0a1';

describe('helper daemon', () => {
  let d: SpawnedDaemon;
  let client: HelperClient;

  beforeAll(async () => {
    // small storage portions and chunks so a few MiB of writes overflow a 1 MiB limit
    d = await spawnDaemon(['--param', 'diffStorageMinimum=2048', '--param', 'chunkMinimumShift=16']);
    client = await connectClient(d.socketPath);
    await client.call('images.create', { path: join(d.dir, 'disk1.img'), size: 64 << 20 });
    await client.call('images.create', { path: join(d.dir, 'disk2.img'), size: 16 << 20, name: 'disk2' });
  });

  afterAll(async () => {
    client?.close();
    await d?.cleanup();
  });

  async function stillUp(): Promise<void> {
    await expect(client.call('version', {})).resolves.toMatchObject({ major: expect.any(Number) });
  }

  it('puts its socket in a 0700 directory and answers hello', async () => {
    expect(statSync(join(d.dir, 'run')).mode & 0o777).toBe(0o700);
    expect(statSync(d.socketPath).mode & 0o077).toBe(0);
    expect(statSync(join(d.dir, 'run', 'nbd.sock')).mode & 0o077).toBe(0);
    const hello = await client.call('hello', { protocolVersion: 1 });
    expect(hello).toMatchObject({ protocolVersion: 1, driver: 'embedded', driverVersion: '2.0.0.0' });
    expect(hello.capabilities).toContain('nbd');
    expect(hello.capabilities).toContain('cbt-active-table');
  });

  it('answers invalid JSON, non-requests, unknown methods and wrong types with clear errors', async () => {
    const raw = await RawConnection.open(d.socketPath);
    try {
      raw.send('{not json\n');
      expect(await raw.next()).toMatchObject({ id: null, error: { code: 'parse_error', errno: 'EINVAL', message: expect.stringMatching(/^invalid JSON/) } });
      raw.send('[1,2,3]\n');
      expect(await raw.next()).toMatchObject({ id: null, error: { code: 'invalid_request' } });
      raw.send('{"id":7,"method":"formatDisk","params":{}}\n');
      expect(await raw.next()).toMatchObject({ id: 7, error: { code: 'unknown_method', errno: 'ENOSYS', message: 'unknown method "formatDisk"' } });
      raw.send('{"id":8,"method":"cbtMap","params":{"device":"disk1","offset":"0","length":1}}\n');
      expect(await raw.next()).toMatchObject({ id: 8, error: { code: 'invalid_params', errno: 'EINVAL', message: expect.stringContaining('offset') } });
      raw.send('{"id":9,"method":"version"}\n');
      expect(await raw.next()).toMatchObject({ id: 9, result: { major: expect.any(Number) } });
    } finally {
      raw.close();
    }
    await stillUp();
  });

  it('answers an oversized message with too_large and cuts that connection off, not others', async () => {
    const raw = await RawConnection.open(d.socketPath);
    try {
      const big = JSON.stringify({ id: 1, method: 'cbtDirty', params: { device: 'disk1', ranges: [], pad: 'x'.repeat(MAX_LINE_LENGTH) } });
      raw.send(big + '\n{"id":2,"method":"version","params":{}}\n');
      expect(await raw.next()).toMatchObject({
        id: null,
        error: { code: 'too_large', errno: 'E2BIG', message: expect.stringMatching(/longer than the 1048576-character limit .*; closing the connection$/) },
      });
      await raw.ended;
      await expect(raw.next(200)).rejects.toThrow(/no message from the helper/); // the version request behind it was not run
    } finally {
      raw.close();
    }
    await stillUp();
  });

  it('refuses more than the in-flight limit of requests on one connection with EAGAIN', async () => {
    const raw = await RawConnection.open(d.socketPath);
    try {
      // long waits keep requests in flight: a snapshot with an event pump, no events
      const { id } = await client.call('snapshotCreate', { diffStoragePath: join(d.dir, 'diff-flight'), limitSectors: 2048 });
      try {
        let text = '';
        for (let i = 1; i <= MAX_IN_FLIGHT_PER_CLIENT + 1; i++) {
          text += JSON.stringify({ id: i, method: 'snapshotWaitEvent', params: { id, timeoutMs: 300 } }) + '\n';
        }
        raw.send(text);
        const first = await raw.next();
        expect(first).toMatchObject({ id: MAX_IN_FLIGHT_PER_CLIENT + 1, error: { errno: 'EAGAIN' } });
        for (let i = 0; i < MAX_IN_FLIGHT_PER_CLIENT; i++) expect(await raw.next()).toMatchObject({ result: { event: null } });
      } finally {
        await client.call('snapshotDestroy', { id });
      }
    } finally {
      raw.close();
    }
  });

  it('refuses difference-storage paths that are symlinks, exist, or lie on /proc or under /dev', async () => {
    const target = join(d.dir, 'target');
    const link = join(d.dir, 'diff-link');
    symlinkSync(target, link);
    const existing = join(d.dir, 'diff-existing');
    writeFileSync(existing, 'keep me');
    const cases: [string, string][] = [
      [link, 'ELOOP'],
      [existing, 'EEXIST'],
      [join(d.dir, 'nowhere', 'diff'), 'ENOENT'],
      [join(existing, 'diff'), 'ENOTDIR'],
      ['/proc/diff', 'EPERM'],
      ['/dev/shm/diff', 'EPERM'],
      [`${d.dir}/x/../diff`, 'EINVAL'],
    ];
    for (const [path, errno] of cases) {
      await expect(client.call('snapshotCreate', { diffStoragePath: path, limitSectors: 2048 }), path).rejects.toMatchObject({ errno });
    }
    expect(existsSync(target)).toBe(false);
    expect(execFileSync('cat', [existing]).toString()).toBe('keep me');
    await stillUp();
  });

  it('refuses a device already in a snapshot (EBUSY), unknown ids (ESRCH) and unregistered devices (ENOENT)', async () => {
    const { id } = await client.call('snapshotCreate', { diffStoragePath: join(d.dir, 'diff-busy'), limitSectors: 4096, devices: ['disk2'] });
    try {
      await expect(client.call('snapshotAdd', { id, device: 'disk2' })).rejects.toMatchObject({ errno: 'EBUSY' });
      await expect(
        client.call('snapshotCreate', { diffStoragePath: join(d.dir, 'diff-busy2'), limitSectors: 4096, devices: [join(d.dir, 'disk2.img')] }),
      ).rejects.toMatchObject({ errno: 'EBUSY', message: expect.stringContaining(id) });
      expect(existsSync(join(d.dir, 'diff-busy2'))).toBe(false);
      await expect(client.call('images.remove', { image: 'disk2' })).rejects.toMatchObject({ errno: 'EBUSY' });
      await expect(client.call('snapshotTake', { id: UNKNOWN_ID })).rejects.toMatchObject({ errno: 'ESRCH' });
      await expect(client.call('snapshotWaitEvent', { id: UNKNOWN_ID, timeoutMs: 10 })).rejects.toMatchObject({ errno: 'ESRCH' });
      await expect(client.call('cbtInfo', { device: '/etc/passwd' })).rejects.toMatchObject({ errno: 'ENOENT' });
      await expect(client.call('cbtInfo', { device: 'nosuchdisk' })).rejects.toMatchObject({ errno: 'ENOENT' });
      await stillUp();
    } finally {
      await client.call('snapshotDestroy', { id });
    }
    expect(existsSync(join(d.dir, 'diff-busy'))).toBe(false);
    // the module answers a destroy of an unknown id with ENODEV
    await expect(client.call('snapshotDestroy', { id })).rejects.toMatchObject({ errno: 'ENODEV' });
  });

  it('serves cbtMap in the compact encoding with the map of the device', async () => {
    const info = await client.call('cbtInfo', { device: 'disk2' });
    const r = await client.call('cbtMap', { device: 'disk2', offset: 0, length: info.blockCount });
    expect(r).toMatchObject({ offset: 0, length: info.blockCount, encoding: 'rle1-base64' });
    // a portion past the end of the map is cut short
    const tail = await client.call('cbtMap', { device: 'disk2', offset: info.blockCount - 2, length: 10 });
    expect(tail).toMatchObject({ offset: info.blockCount - 2, length: 2 });
    await client.call('cbtDirty', { device: 'disk2', ranges: [{ offset: 0, count: 1 }] });
    const after = await client.call('cbtMap', { device: 'disk2', offset: 0, length: 1 });
    expect(after.length).toBe(1);
  });

  it('serves the active CBT table (engine extension): writes since the take show there before the next take', async () => {
    const { id } = await client.call('snapshotCreate', { diffStoragePath: join(d.dir, 'diff-active'), limitSectors: 1 << 16, devices: ['disk2'] });
    try {
      await client.call('snapshotTake', { id });
      const info = await client.call('cbtInfo', { device: 'disk2' });
      const block = info.blockCount - 1;
      await client.call('cbtDirty', { device: 'disk2', ranges: [{ offset: (block * info.blockSize) / 512, count: 1 }] });
      const read = async (table?: 'active' | 'snapshot') => {
        const r = await client.call('cbtMap', table ? { device: 'disk2', offset: block, length: 1, table } : { device: 'disk2', offset: block, length: 1 });
        return decodeCbtMap(r.data, r.length)[0];
      };
      // cbtdirty marks both tables: the active number in the write table, the previous one in the read table
      expect(await read('active')).toBe(info.changesNumber + 1);
      expect(await read('snapshot')).toBe(info.changesNumber);
      expect(await read()).toBe(info.changesNumber);
      await expect(client.call('cbtMap', { device: 'disk2', offset: info.blockCount + 1, length: 1, table: 'active' })).rejects.toMatchObject({ errno: 'ENODATA' });
    } finally {
      await client.call('snapshotDestroy', { id });
    }
  });

  it.skipIf(!hasCommand('qemu-io'))('[qemu-io] a second client sees the first client\'s snapshot overflow events', async () => {
    const watcher = await connectClient(d.socketPath);
    const seen: string[] = [];
    const states: string[] = [];
    watcher.on('event', (e) => seen.push(e.code));
    watcher.on('snapshot', (s) => states.push(s.state));
    await watcher.call('subscribe', { topics: ['event', 'snapshot'] });
    const { id } = await client.call('snapshotCreate', { diffStoragePath: join(d.dir, 'diff-small'), limitSectors: 2048, devices: ['disk1'] });
    try {
      await client.call('snapshotTake', { id });
      const { devices } = await client.call('devices.list', {});
      const uri = devices.find((x) => x.name === 'disk1')?.nbdUri;
      expect(uri).toMatch(/^nbd\+unix:\/\/\/disk1\?socket=/);
      execFileSync('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 0 8M', uri as string], { stdio: 'pipe' });
      const deadline = Date.now() + 10_000;
      while (!seen.includes('corrupted') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(seen).toContain('corrupted');
      expect(states).toEqual(expect.arrayContaining(['created', 'taken']));
      const info = await client.call('snapshotInfo', { device: 'disk1' });
      expect(info.errorCode).toBe(-28);
      // the helper's log says what happened, in words
      expect(d.log()).toContain(`snapshot ${id}: no space left in the difference storage`);
      expect(d.log()).toContain(`snapshot ${id}: the image of disk1 is corrupted: ENOSPC (-28): the difference storage is full`);
      // the event queue for snapshotWaitEvent is served by the pump, not stolen by it
      const waited = await client.call('snapshotWaitEvent', { id, timeoutMs: 1000 });
      expect(waited.event).not.toBeNull();
    } finally {
      await client.call('snapshotDestroy', { id });
    }
    const deadline = Date.now() + 5000;
    while (!states.includes('destroyed') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(states).toContain('destroyed');
    watcher.close();
  });

  it('runs a write workload on an engine device and reports its progress to subscribers', async () => {
    const watcher = await connectClient(d.socketPath);
    const progress: { running: boolean; bytesWritten: number; device: string }[] = [];
    watcher.on('workload', (p) => progress.push(p));
    await watcher.call('subscribe', { topics: ['workload'] });
    try {
      await client.call('workload.start', { device: 'disk2', rateMiBps: 8, pattern: 'sequential' });
      await expect(client.call('workload.start', { device: 'disk2', rateMiBps: 8, pattern: 'random' })).rejects.toMatchObject({ errno: 'EALREADY' });
      await new Promise((r) => setTimeout(r, 600));
      expect((await client.call('workload.list', {})).workloads).toEqual([expect.objectContaining({ device: 'disk2', running: true })]);
      await client.call('workload.stop', { device: join(d.dir, 'disk2.img') });
      await expect(client.call('workload.stop', { device: 'disk2' })).rejects.toMatchObject({ errno: 'ESRCH' });
      await new Promise((r) => setTimeout(r, 100));
      expect(progress.some((p) => p.running && p.device === 'disk2')).toBe(true);
      const last = progress[progress.length - 1];
      expect(last).toMatchObject({ device: 'disk2', running: false });
      expect(last?.bytesWritten).toBeGreaterThan(0);
      // the writes went through the tracker
      const info = await client.call('cbtInfo', { device: 'disk2' });
      expect(info.blockCount).toBeGreaterThan(0);
    } finally {
      watcher.close();
    }
  });

  it('SIGTERM destroys embedded snapshots, removes their storage and the socket', async () => {
    const { id } = await client.call('snapshotCreate', { diffStoragePath: join(d.dir, 'diff-live'), limitSectors: 4096, devices: ['disk2'] });
    await client.call('snapshotTake', { id });
    expect(existsSync(join(d.dir, 'diff-live'))).toBe(true);
    const pending = client.call('snapshotWaitEvent', { id, timeoutMs: 60_000 }, { timeoutMs: 70_000 });
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    const code = await d.stop();
    expect(code).toBe(0);
    // a pending wait is answered at shutdown, not left to its 60 s timeout
    await expect(pending).resolves.toEqual({ event: null });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(existsSync(join(d.dir, 'diff-live'))).toBe(false);
    expect(existsSync(d.socketPath)).toBe(false);
    expect(existsSync(join(d.dir, 'run', 'nbd.sock'))).toBe(false);
    // images stay registered for the next start
    expect(JSON.stringify(JSON.parse(execFileSync('cat', [join(d.stateDir, 'images.json')]).toString()))).toContain('disk2');
  });

  it('reopens registered images and keeps settings after a restart', async () => {
    const again = await spawnDaemon([], {}, d.dir);
    try {
      const c = await connectClient(again.socketPath);
      try {
        const { images } = await c.call('images.list', {});
        expect(images.map((i) => [i.name, i.capacity])).toEqual([['disk1', 64 << 20], ['disk2', 16 << 20]]);
        expect(images[0]?.nbdUri).toMatch(/^nbd\+unix:\/\/\/disk1\?socket=/);
        const set = await c.call('settings.set', { diffStorageDir: d.dir, eventPollMs: 250 });
        expect(set).toMatchObject({ diffStorageDir: d.dir, eventPollMs: 250 });
        await expect(c.call('settings.set', { eventPollMs: 5 })).rejects.toMatchObject({ code: 'invalid_params' });
      } finally {
        c.close();
      }
      await again.stop();
      const third = await spawnDaemon([], {}, d.dir);
      const c3 = await connectClient(third.socketPath);
      await expect(c3.call('settings.get', {})).resolves.toMatchObject({ diffStorageDir: d.dir, eventPollMs: 250 });
      c3.close();
      await third.stop();
    } finally {
      await again.stop();
    }
  });
});

describe.skipIf(!isRoot)('[root] helper started through pkexec (PKEXEC_UID)', () => {
  it('for uid A creates, registers and removes nothing in a directory of root or of uid B', async () => {
    const A = 4711;
    const B = 4712;
    const base = mkdtempSync(join(tmpdir(), 'bm-pkexec-'));
    chmodSync(base, 0o755);
    const mk = (name: string, uid: number, mode: number): string => {
      const p = join(base, name);
      mkdirSync(p, { mode });
      chownSync(p, uid, uid);
      chmodSync(p, mode);
      return p;
    };
    const mine = mk('a', A, 0o700);
    const theirs = mk('b', B, 0o755);
    const roots = mk('root', 0, 0o755);
    for (const [dir, uid] of [[theirs, B], [roots, 0]] as const) {
      writeFileSync(join(dir, 'x.img'), Buffer.alloc(1 << 20));
      chownSync(join(dir, 'x.img'), uid, uid);
      chmodSync(join(dir, 'x.img'), 0o644);
    }
    const d = await spawnDaemon([], { PKEXEC_UID: String(A) });
    const c = await connectClient(d.socketPath);
    try {
      await c.call('images.create', { path: join(mine, 'disk.img'), size: 1 << 20, name: 'disk' });
      for (const dir of [theirs, roots]) {
        await expect(c.call('snapshotCreate', { diffStoragePath: join(dir, 'diff'), limitSectors: 2048 }), dir).rejects.toMatchObject({ errno: 'EACCES' });
        await expect(c.call('images.create', { path: join(dir, 'new.img'), size: 1 << 20 }), dir).rejects.toMatchObject({ errno: 'EACCES' });
        await expect(c.call('images.add', { path: join(dir, 'x.img') }), dir).rejects.toMatchObject({ errno: 'EACCES' });
        expect(readdirSync(dir), dir).toEqual(['x.img']);
      }
      // a storage file of A's, whose directory A then swaps for B's holding a file of that name:
      // destroying the snapshot removes A's file from A's directory, never B's
      const { id } = await c.call('snapshotCreate', { diffStoragePath: join(mine, 'diff'), limitSectors: 2048, devices: ['disk'] });
      writeFileSync(join(theirs, 'diff'), 'B keeps this');
      chownSync(join(theirs, 'diff'), B, B);
      renameSync(mine, join(base, 'a-moved'));
      renameSync(theirs, mine);
      await c.call('snapshotDestroy', { id });
      expect(readFileSync(join(mine, 'diff'), 'utf8')).toBe('B keeps this');
      expect(readdirSync(join(base, 'a-moved'))).toEqual(['disk.img']);
    } finally {
      c.close();
      await d.cleanup();
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('hands its directory, sockets and created images to that user', async () => {
    const d = await spawnDaemon([], { PKEXEC_UID: '65534' });
    try {
      const run = join(d.dir, 'run');
      expect(statSync(run)).toMatchObject({ uid: 65534, gid: 65534 });
      expect(statSync(d.socketPath)).toMatchObject({ uid: 65534 });
      expect(statSync(join(run, 'nbd.sock'))).toMatchObject({ uid: 65534 });
      const c = await connectClient(d.socketPath);
      try {
        // created with that user's rights: in a directory of theirs, owned by them
        const home = mkdtempSync(join(tmpdir(), 'bm-user-'));
        chownSync(home, 65534, 65534);
        try {
          await c.call('images.create', { path: join(home, 'user.img'), size: 1 << 20 });
          expect(statSync(join(home, 'user.img'))).toMatchObject({ uid: 65534, gid: 65534 });
          // and not in the helper's own (root's) directory
          await expect(c.call('images.create', { path: join(d.dir, 'user.img'), size: 1 << 20 })).rejects.toMatchObject({ errno: 'EACCES' });
          expect(existsSync(join(d.dir, 'user.img'))).toBe(false);
        } finally {
          rmSync(home, { recursive: true, force: true });
        }
      } finally {
        c.close();
      }
    } finally {
      await d.cleanup();
    }
  });
});

describe('helper started with --exit-with-parent', () => {
  it('shuts down cleanly when its standard input closes', async () => {
    const d = await spawnDaemon(['--exit-with-parent'], {}, undefined, 'pipe');
    try {
      const c = await connectClient(d.socketPath);
      await c.call('images.create', { path: join(d.dir, 'p.img'), size: 1 << 20 });
      const { id } = await c.call('snapshotCreate', { diffStoragePath: join(d.dir, 'diff-p'), limitSectors: 2048, devices: ['p'] });
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      c.close();
      const exited = new Promise<number | null>((r) => d.proc.once('exit', (code) => r(code)));
      d.proc.stdin?.end();
      expect(await exited).toBe(0);
      expect(d.log()).toContain('parent gone');
      expect(existsSync(join(d.dir, 'diff-p'))).toBe(false);
      expect(existsSync(d.socketPath)).toBe(false);
    } finally {
      await d.cleanup();
    }
  });
});
