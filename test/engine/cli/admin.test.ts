/**
 * The CLI as an administrator meets it: usage, messages that say what happened and
 * what to do, relative paths, tables and JSON objects, and a watcher that notices
 * its helper going away.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { explainErrorCode } from '../../../engine/cli/blksnap-commands.js';
import { COMMANDS, main } from '../../../engine/cli/main.js';
import { REPO, spawnDaemon } from '../helper/spawn-daemon.js';
import type { SpawnedDaemon } from '../helper/spawn-daemon.js';

async function run(argv: string[], isTty = false): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t), isTty });
  return { code, out, err };
}

const BIN = join(REPO, 'bin/blksnap-manager.mjs');

describe('blksnap-manager usage and help', () => {
  it('without arguments prints the overview on stderr (stdout stays empty) and exits EINVAL', async () => {
    const r = await run([]);
    expect(r).toMatchObject({ code: 22, out: '' });
    expect(r.err).toContain('Usage: blksnap-manager COMMAND');
    expect(r.err).toContain('A first session');
  });

  it('every command says what it prints and shows a runnable example', async () => {
    for (const c of COMMANDS) {
      const h = await run([...c.name.split(' '), '--help']);
      expect(h.out, c.name).toMatch(/^Prints: .+\.$/m);
      expect(h.out, c.name).toMatch(/^Examples?:\n {2}.*blksnap-manager /m);
      expect(h.out, c.name).not.toContain('5b1c...');
    }
    expect((await run(['snapshot_create', '--help'])).out).toContain('-d disk1 -d disk2');
  });

  it('explains a snapshot error code and what to do', () => {
    expect(explainErrorCode(0)).toBe('');
    expect(explainErrorCode(-28)).toMatch(/^ENOSPC: the difference storage overflowed.*larger --limit$/);
    expect(explainErrorCode(-5)).toMatch(/^EIO: the snapshot image is corrupted/);
  });

  it('checks --id before asking the helper, with a hint where ids come from', async () => {
    const r = await run(['snapshot_take', '-i', 'nope', '--socket', '/nonexistent/helper.sock']);
    expect(r.code).toBe(22);
    expect(r.err).toContain('--id must be a snapshot id as printed by snapshot_create');
    expect(r.err).toContain('snapshot_collect');
  });
});

describe('blksnap-manager when no helper answers', () => {
  it('tells a missing socket, a non-socket and a socket left by a dead helper apart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bm-nohelper-'));
    try {
      const missing = await run(['version', '--socket', join(dir, 'none.sock')]);
      expect(missing).toMatchObject({ code: 2, err: expect.stringContaining('; is the helper running? Start it with "blksnap-manager daemon --socket PATH --state-dir DIR"') });
      const notSocket = await run(['version', '--socket', dir]);
      expect(notSocket).toMatchObject({ code: 2, err: expect.stringContaining(`no helper listening at ${dir}: it is not a socket (wrong --socket?)`) });
      // a socket nobody listens on, as a killed helper leaves it
      const stale = join(dir, 'stale.sock');
      const server = createServer();
      await new Promise<void>((r) => server.listen(stale, r));
      // closing a Node server removes its file; copy the situation with a hard link made first
      linkSync(stale, join(dir, 'left.sock'));
      await new Promise<void>((r) => server.close(() => r()));
      const left = await run(['version', '--socket', join(dir, 'left.sock')]);
      expect(left).toMatchObject({ code: 2, err: expect.stringContaining('the socket was left by a helper that is no longer running; start one again') });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('daemon: a socket directory in a missing directory and a missing kernel module say what to do', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bm-daemon-'));
    try {
      const nodir = await run(['daemon', '--socket', join(dir, 'no', 'run', 'h.sock'), '--state-dir', join(dir, 'state'), '--driver', 'embedded', '-q']);
      expect(nodir).toMatchObject({ code: 2, err: expect.stringContaining(`cannot create the socket directory ${join(dir, 'no', 'run')}: ${join(dir, 'no')} does not exist`) });
      if (!existsSync('/dev/blksnap-control')) {
        const kernel = await run(['daemon', '--socket', join(dir, 'run', 'h.sock'), '--state-dir', join(dir, 'state'), '--driver', 'kernel', '-q']);
        expect(kernel).toMatchObject({ code: 2, err: expect.stringMatching(/no blksnap kernel module is loaded: install blksnap-dkms 7\.x.*"modprobe bdevfilter && modprobe veeamblksnap".*--driver embedded/) });
        expect(existsSync(join(dir, 'state', 'helper.pid'))).toBe(false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('blksnap-manager against a helper, as an administrator', () => {
  let d: SpawnedDaemon;
  let sock: string[];

  beforeAll(async () => {
    d = await spawnDaemon(['--param', 'diffStorageMinimum=2048', '--param', 'chunkMinimumShift=16']);
    sock = ['--socket', d.socketPath];
    mkdirSync(join(d.dir, 'diffs'));
    expect((await run(['image', 'create', '--path', join(d.dir, 'a.img'), '--size', '16M', ...sock])).code).toBe(0);
    expect((await run(['image', 'create', '--path', join(d.dir, 'b.img'), '--size', '8M', ...sock])).code).toBe(0);
  });

  afterAll(async () => {
    await d?.cleanup();
  });

  it('creates a snapshot of several devices with a relative storage path and a fractional limit', async () => {
    const rel = relative(process.cwd(), join(d.dir, 'diffs', 'rel0'));
    const r = await run(['snapshot_create', '-d', 'a', '-d', 'b', '-f', rel, '-l', '1.5M', ...sock]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const id = r.out.trim();
    const info = JSON.parse((await run(['storage_info', '-i', id, '--json', ...sock])).out) as { path: string; limitSectors: number };
    expect(info).toMatchObject({ path: join(d.dir, 'diffs', 'rel0'), limitSectors: 3072 });
    expect((await run(['snapshot_info', '-d', join(d.dir, 'b.img'), ...sock])).out).toBe(`error_code=0\nimage=\nsnapshot=${id}\n`);
    expect((await run(['snapshot_destroy', '-i', id, ...sock])).code).toBe(0);
    expect((await run(['snapshot_info', '-d', 'b', ...sock])).out).toBe('error_code=0\nimage=\nsnapshot=-\n');
    expect(existsSync(join(d.dir, 'diffs', 'rel0'))).toBe(false);
  });

  it('storage_grow raises a held snapshot\'s limit by a size with a suffix; a bad size is refused', async () => {
    const r = await run(['snapshot_create', '-d', 'a', '-f', join(d.dir, 'diffs', 'grow0'), '-l', '1M', ...sock]);
    expect(r.code).toBe(0);
    const id = r.out.trim();
    const grown = await run(['storage_grow', '-i', id, '--by', '512K', ...sock]);
    expect(grown.err).toBe('');
    expect(grown.out).toBe('limit_sectors=3072\n'); // 2048 + 1024 sectors
    const bad = await run(['storage_grow', '-i', id, '--by', '100', ...sock]);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/at least one sector/);
    expect(JSON.parse((await run(['storage_info', '-i', id, '--json', ...sock])).out)).toMatchObject({ limitSectors: 3072 });
    expect((await run(['snapshot_destroy', '-i', id, ...sock])).code).toBe(0);
  });

  it('says what is wrong with a storage path: a directory, a missing directory, an existing file', async () => {
    const dir = await run(['snapshot_create', '-d', 'a', '-f', join(d.dir, 'diffs'), '-l', '1M', ...sock]);
    expect(dir.code).toBe(21);
    expect(dir.err).toContain(`EISDIR: the difference storage path is a directory: ${join(d.dir, 'diffs')}; name a new file in it`);
    const missing = await run(['snapshot_create', '-d', 'a', '-f', join(d.dir, 'nodir', 'x'), '-l', '1M', ...sock]);
    expect(missing).toMatchObject({ code: 2, err: expect.stringContaining(`difference storage: the directory ${join(d.dir, 'nodir')} does not exist`) });
    const existing = await run(['snapshot_create', '-d', 'a', '-f', join(d.dir, 'a.img'), '-l', '1M', ...sock]);
    expect(existing).toMatchObject({ code: 17, err: expect.stringContaining('never reused or overwritten') });
    const bad = await run(['snapshot_create', '-d', 'a', '-f', join(d.dir, 'diffs', 'q'), '-l', '1Q', ...sock]);
    expect(bad).toMatchObject({ code: 22, err: expect.stringContaining('e.g. 512, 64M, 1.5G') });
    expect((await run(['snapshot_collect', ...sock])).out).toBe('');
  });

  it('--storage-form: a directory leaves nothing, an existing file is kept as it was outside what was written, a bad form says the choices', async () => {
    mkdirSync(join(d.dir, 'forms'), { recursive: true });
    const inDir = await run(['snapshot_create', '-d', 'a', '-f', join(d.dir, 'forms'), '--storage-form', 'directory', '-l', '1M', ...sock]);
    expect(inDir.code).toBe(0);
    expect(readdirSync(join(d.dir, 'forms'))).toEqual([]);
    expect(JSON.parse((await run(['storage_info', '-i', inDir.out.trim(), '--json', ...sock])).out)).toMatchObject({ path: join(d.dir, 'forms') });
    expect((await run(['snapshot_destroy', '-i', inDir.out.trim(), ...sock])).code).toBe(0);
    expect(readdirSync(join(d.dir, 'forms'))).toEqual([]);

    const prepared = join(d.dir, 'forms', 'prepared.img');
    writeFileSync(prepared, Buffer.alloc(1024 * 1024, 0x3c));
    const existing = await run(['snapshot_create', '-d', 'a', '-f', prepared, '--storage-form', 'existing-file', '-l', '1M', ...sock]);
    expect(existing.code).toBe(0);
    expect((await run(['snapshot_destroy', '-i', existing.out.trim(), ...sock])).code).toBe(0);
    expect(readFileSync(prepared).equals(Buffer.alloc(1024 * 1024, 0x3c))).toBe(true);

    const bad = await run(['snapshot_create', '-d', 'a', '-f', prepared, '--storage-form', 'file', '-l', '1M', ...sock]);
    expect(bad).toMatchObject({ code: 22, err: expect.stringContaining('--storage-form must be one of new-file, existing-file, directory, block-device, not "file"') });
    const notDevice = await run(['snapshot_create', '-d', 'a', '-f', prepared, '--storage-form', 'block-device', '-l', '1M', ...sock]);
    expect(notDevice).toMatchObject({ code: 22, err: expect.stringContaining('is not a block device (block devices are under /dev)') });
  });

  it('adds a hint to unknown snapshots and devices', async () => {
    const take = await run(['snapshot_take', '-i', '0b7c1a52-8d7e-4c36-9a57-2f0f3bd0e0a1', ...sock]);
    expect(take).toMatchObject({ code: 3, err: expect.stringContaining('"blksnap-manager snapshot_collect" lists the snapshots') });
    const destroy = await run(['snapshot_destroy', '-i', '0b7c1a52-8d7e-4c36-9a57-2f0f3bd0e0a1', '--json', ...sock]);
    expect(destroy.code).toBe(19);
    expect(JSON.parse(destroy.err)).toMatchObject({ error: { errno: 'ENODEV', message: expect.stringContaining('snapshot_collect') } });
    expect((await run(['image', 'create', '--path', join(d.dir, 'u.img'), '--size', '1M', ...sock])).code).toBe(0);
    const untracked = await run(['readcbtmap', '-d', 'u', '-f', join(d.dir, 'u.cbt'), ...sock]);
    expect(untracked).toMatchObject({ code: 2, err: expect.stringContaining('start with "blksnap-manager attach -d u"') });
    expect((await run(['detach', '-d', 'u', ...sock])).err).not.toContain('attach -d');
    expect((await run(['image', 'remove', 'u', ...sock])).code).toBe(0);
    const dev = await run(['cbtinfo', '-d', 'nosuch', ...sock]);
    expect(dev).toMatchObject({ code: 2, err: expect.stringContaining('"blksnap-manager devices" lists them') });
    const id = (await run(['snapshot_create', '-d', 'a', '-f', join(d.dir, 'diffs', 'held'), '-l', '1M', ...sock])).out.trim();
    try {
      const busy = await run(['image', 'remove', 'a', ...sock]);
      expect(busy).toMatchObject({ code: 16, err: expect.stringContaining(`destroy that snapshot first (blksnap-manager snapshot_destroy -i ${id})`) });
      const twice = await run(['snapshot_create', '-d', 'a', '-f', join(d.dir, 'diffs', 'held2'), '-l', '1M', ...sock]);
      expect(twice).toMatchObject({ code: 16, err: expect.stringContaining(`snapshot_destroy -i ${id}`) });
      expect((await run(['snapshot_take', '-i', id, ...sock])).code).toBe(0);
      const late = await run(['snapshot_add', '-i', id, '-d', 'b', ...sock]);
      expect(late).toMatchObject({ code: 114, err: expect.stringContaining('devices can only be added before snapshot_take') });
    } finally {
      await run(['snapshot_destroy', '-i', id, ...sock]);
    }
  });

  it('readcbtmap: a missing output directory is ENOENT (not EIO); a relative file is reported absolute', async () => {
    const missing = await run(['readcbtmap', '-d', 'a', '-f', join(d.dir, 'nodir', 'a.cbt'), ...sock]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain(`cannot write the CBT map to ${join(d.dir, 'nodir', 'a.cbt')}: the directory ${join(d.dir, 'nodir')} does not exist`);
    const rel = relative(process.cwd(), join(d.dir, 'a.cbt'));
    const r = await run(['readcbtmap', '-d', 'a', '-f', rel, '--json', ...sock]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ file: join(d.dir, 'a.cbt'), length: readFileSync(join(d.dir, 'a.cbt')).length });
  });

  it('markdirtyblock refuses a range past the end of the device, naming its size', async () => {
    const r = await run(['markdirtyblock', '-d', 'b', '-r', '0:8', '-r', '16380:8', ...sock]);
    expect(r.code).toBe(22);
    expect(r.err).toContain('range 16380:8 ends beyond the device b (16384 sectors of 512 bytes)');
    expect((await run(['markdirtyblock', '-d', 'b', '-r', '16376:8', ...sock])).code).toBe(0);
  });

  it('image create: a missing directory and a bad size say what to fix', async () => {
    const nodir = await run(['image', 'create', '--path', join(d.dir, 'nodir', 'x.img'), '--size', '1M', ...sock]);
    expect(nodir).toMatchObject({ code: 2, err: expect.stringContaining(`lab disk: the directory ${join(d.dir, 'nodir')} does not exist`) });
    const zero = await run(['image', 'create', '--path', join(d.dir, 'z.img'), '--size', '0', ...sock]);
    expect(zero).toMatchObject({ code: 22, err: expect.stringContaining('--size must be a positive multiple of 512 bytes') });
    const nofile = await run(['image', 'add', '--path', join(d.dir, 'none.img'), ...sock]);
    expect(nofile).toMatchObject({ code: 2, err: expect.stringContaining('no such file or directory') });
  });

  it('lists as tables with a header in text, and as the helper\'s objects with --json', async () => {
    const list = await run(['image', 'list', ...sock]);
    const lines = list.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+PATH\s+SIZE\s+NBD$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 3))).toEqual([
      ['a', join(d.dir, 'a.img'), '16M'],
      ['b', join(d.dir, 'b.img'), '8M'],
    ]);
    const devices = await run(['devices', ...sock]);
    expect(devices.out.split('\n')[0]).toMatch(/^KIND\s+DEVICE\s+SIZE\s+SNAPSHOT\s+NBD$/);
    expect(devices.out).toMatch(/^image\s+a\s+16M\s+-\s+nbd\+unix:\/\/\/a\?socket=/m);
    expect((await run(['workload', 'list', ...sock])).out).toBe('no workloads running\n');
    for (const [argv, key] of [
      [['devices'], 'devices'],
      [['image', 'list'], 'images'],
      [['workload', 'list'], 'workloads'],
      [['exports'], 'exports'],
      [['snapshot_collect'], 'ids'],
    ] as const) {
      const r = await run([...argv, '--json', ...sock]);
      expect(r.err, argv.join(' ')).toBe('');
      const parsed = JSON.parse(r.out) as Record<string, unknown>;
      expect(Array.isArray(parsed), argv.join(' ')).toBe(false);
      expect(Array.isArray(parsed[key]), argv.join(' ')).toBe(true);
    }
    expect((await run(['image', 'create', '--path', join(d.dir, 'c.img'), '--size', '1M', ...sock])).code).toBe(0);
    expect(JSON.parse((await run(['image', 'remove', 'c', '--json', ...sock])).out)).toEqual({ ok: true });
  });
});

describe('blksnap-manager readcbtmap progress', () => {
  let d: SpawnedDaemon;

  beforeAll(async () => {
    d = await spawnDaemon(['--param', 'trackingBlockMinimumShift=9']);
  });

  afterAll(async () => {
    await d?.cleanup();
  });

  it('shows progress on a terminal for a map of several portions, and none otherwise', async () => {
    const sock = ['--socket', d.socketPath];
    expect((await run(['image', 'create', '--path', join(d.dir, 'big.img'), '--size', '300M', ...sock])).code).toBe(0);
    expect((await run(['attach', '-d', 'big', ...sock])).code).toBe(0);
    const tty = await run(['readcbtmap', '-d', 'big', '-f', join(d.dir, 'big.map'), ...sock], true);
    expect(tty.code).toBe(0);
    expect(tty.err).toContain('\rreading the CBT map: 0% (0 of 614400 blocks)');
    expect(tty.err).toMatch(/reading the CBT map: 85% \(524288 of 614400 blocks\)/);
    expect(tty.err.endsWith('\r\x1b[K')).toBe(true);
    expect(tty.out).toContain('length=614400');
    const plain = await run(['readcbtmap', '-d', 'big', '-f', join(d.dir, 'big.map'), ...sock]);
    expect(plain.err).toBe('');
  });
});

describe('snapshot_watcher and its helper', () => {
  function watch(socketPath: string, id: string, extra: string[] = []): { done: Promise<{ code: number | null; out: string }>; output(): string } {
    const child = spawn(process.execPath, [BIN, 'snapshot_watcher', '-i', id, '--socket', socketPath, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    return { done: new Promise((res) => child.once('exit', (code) => res({ code, out }))), output: () => out };
  }

  async function until(check: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('SIGTERM of the helper: the held snapshot is reported destroyed, the watcher exits 0', async () => {
    const d = await spawnDaemon();
    try {
      const sock = ['--socket', d.socketPath];
      await run(['image', 'create', '--path', join(d.dir, 'w.img'), '--size', '4M', ...sock]);
      const id = (await run(['snapshot_create', '-d', 'w', '-f', join(d.dir, 'diff-w'), '-l', '1M', ...sock])).out.trim();
      await run(['snapshot_take', '-i', id, ...sock]);
      const w = watch(d.socketPath, id);
      const wj = watch(d.socketPath, id, ['--json']);
      await until(() => w.output().includes('watching snapshot') && wj.output().includes('"watching"'), 'the watchers to subscribe');
      expect(await d.stop()).toBe(0);
      const r = await w.done;
      const rj = await wj.done;
      expect(rj.code).toBe(0);
      const lines = rj.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines[0]).toEqual({ watching: id });
      expect(lines[lines.length - 1]).toEqual({ snapshot: { id, state: 'destroyed' } });
      expect(r.out).toContain(`state=destroyed snapshot=${id}`);
      expect(r.code).toBe(0);
      expect(d.log()).toContain(`destroying 1 snapshot(s) of the embedded engine with the helper: ${id}`);
      expect(existsSync(join(d.dir, 'diff-w'))).toBe(false);
    } finally {
      await d.cleanup();
    }
  }, 30_000);

  it('[crash] a killed helper: the watcher fails with EIO; the next helper takes the stale socket and removes the left storage', async () => {
    const d = await spawnDaemon();
    const sock = ['--socket', d.socketPath];
    await run(['image', 'create', '--path', join(d.dir, 'k.img'), '--size', '4M', ...sock]);
    const id = (await run(['snapshot_create', '-d', 'k', '-f', join(d.dir, 'diff-k'), '-l', '1M', ...sock])).out.trim();
    const w = watch(d.socketPath, id);
    await until(() => w.output().includes('watching snapshot'), 'the watcher to subscribe');
    const pending = run(['snapshot_waitevent', '-i', id, '-t', '30000', ...sock]); // in-process: connected within milliseconds
    await new Promise((r) => setTimeout(r, 500)); // the pending wait reaches the helper
    d.proc.kill('SIGKILL');
    const cut = await pending;
    expect(cut.code).toBe(5);
    expect(cut.err).toContain('the helper stopped or crashed before answering');
    await d.stop();
    const r = await w.done;
    expect(r.code).toBe(5);
    expect(r.out).toContain(`EIO: the helper closed the connection before snapshot ${id} was destroyed`);
    // leftovers of the crash: the socket and the storage file
    expect(existsSync(d.socketPath)).toBe(true);
    expect(existsSync(join(d.dir, 'diff-k'))).toBe(true);
    const again = await spawnDaemon([], {}, d.dir);
    try {
      await until(() => again.log().includes('helper listening'), 'the helper');
      expect(again.log()).toContain(`removed ${join(d.dir, 'diff-k')}, the difference storage of snapshot ${id} left by a helper that did not shut down cleanly`);
      expect(existsSync(join(d.dir, 'diff-k'))).toBe(false);
      expect((await run(['image', 'list', '--json', ...sock])).out).toContain('"name": "k"');
    } finally {
      await again.cleanup();
    }
  }, 40_000);

  it('restart with a registered image whose file is gone: logged, listed without size, refused with ENODEV and what to do', async () => {
    const d = await spawnDaemon();
    const sock = ['--socket', d.socketPath];
    await run(['image', 'create', '--path', join(d.dir, 'gone.img'), '--size', '1M', ...sock]);
    expect(await d.stop()).toBe(0);
    renameSync(join(d.dir, 'gone.img'), join(d.dir, 'moved.img'));
    const again = await spawnDaemon([], {}, d.dir);
    try {
      expect(again.log()).toContain(`cannot open registered image gone (${join(d.dir, 'gone.img')}): the file does not exist; it stays registered`);
      expect((await run(['image', 'list', ...sock])).out).toMatch(/^gone\s+\S+gone\.img\s+-\s+-$/m);
      const r = await run(['snapshot_create', '-d', 'gone', '-f', join(d.dir, 'diff-g'), '-l', '1M', ...sock]);
      expect(r.code).toBe(19);
      expect(r.err).toContain('image gone is registered but its file');
      expect(r.err).toContain('blksnap-manager image remove gone');
      expect((await run(['image', 'remove', 'gone', ...sock])).code).toBe(0);
      expect((await run(['image', 'add', '--path', join(d.dir, 'moved.img'), '--name', 'gone', ...sock])).code).toBe(0);
    } finally {
      await again.cleanup();
    }
  }, 40_000);

  it('a live helper is never displaced: same socket or same state directory -> EBUSY (16)', async () => {
    const d = await spawnDaemon();
    try {
      const sameSocket = spawnSync(process.execPath, [BIN, 'daemon', '--socket', d.socketPath, '--state-dir', join(d.dir, 'state2'), '--driver', 'embedded'], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(sameSocket.status).toBe(16);
      expect(sameSocket.stderr).toContain(`EBUSY: another helper is already listening on ${d.socketPath}`);
      const sameState = spawnSync(process.execPath, [BIN, 'daemon', '--socket', join(d.dir, 'run2', 'h.sock'), '--state-dir', d.stateDir, '--driver', 'embedded'], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(sameState.status).toBe(16);
      expect(sameState.stderr).toContain(`uses the state directory ${d.stateDir}`);
      expect(existsSync(join(d.dir, 'run2', 'h.sock'))).toBe(false);
      expect((await run(['version', '--socket', d.socketPath])).code).toBe(0);
    } finally {
      await d.cleanup();
    }
  }, 60_000);
});
