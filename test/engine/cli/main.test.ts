/** The CLI in-process: help, argument errors, exit statuses, --json, readcbtmap bytes. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS, main } from '../../../engine/cli/main.js';
import { hasCommand } from '../../helpers/env.js';
import { spawnDaemon } from '../helper/spawn-daemon.js';
import type { SpawnedDaemon } from '../helper/spawn-daemon.js';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
  return { code, out, err };
}

describe('blksnap-manager without a helper', () => {
  it('prints --help for the tool and for every command', async () => {
    const top = await run(['--help']);
    expect(top.code).toBe(0);
    for (const c of COMMANDS) {
      expect(top.out).toContain(c.name);
      const h = await run([...c.name.split(' '), '--help']);
      expect(h.code, c.name).toBe(0);
      expect(h.out).toContain(`Usage: blksnap-manager ${c.name}`);
      expect(h.out).toContain('--socket PATH');
    }
    const d = await run(['daemon', '--help']);
    expect(d.code).toBe(0);
    expect(d.out).toContain('--state-dir DIR');
  });

  it('docs/cli.md shows an example of every command', () => {
    const doc = readFileSync(join(import.meta.dirname, '../../../docs/cli.md'), 'utf8');
    for (const c of [...COMMANDS.map((x) => x.name), 'daemon']) expect(doc, c).toContain(`blksnap-manager ${c}`);
  });

  it('fails with EINVAL for unknown commands and options', async () => {
    expect(await run(['frobnicate'])).toMatchObject({ code: 22, err: expect.stringContaining('EINVAL: unknown command "frobnicate"') });
    expect(await run(['cbtinfo', '--bogus'])).toMatchObject({ code: 22, err: expect.stringContaining('EINVAL') });
    expect(await run(['image'])).toMatchObject({ code: 22, err: expect.stringContaining('subcommand') });
    expect(await run(['daemon', '--driver', 'fast', '--socket', '/nonexistent/x/s'])).toMatchObject({ code: 22, err: expect.stringContaining('--driver') });
  });

  it('refuses an out-of-range daemon --param with EINVAL before starting', async () => {
    const r = await run(['daemon', '--socket', '/nonexistent-dir/h.sock', '--state-dir', '/nonexistent-dir/s', '--param', 'chunkMinimumShift=5']);
    expect(r).toMatchObject({ code: 22, err: expect.stringContaining('chunkMinimumShift') });
  });

  it('fails with ENOENT and a hint when no helper listens', async () => {
    const r = await run(['version', '--socket', '/nonexistent-dir/helper.sock']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^blksnap-manager: ENOENT: no helper listening at \/nonexistent-dir\/helper.sock; is the helper running/);
    const j = await run(['version', '--json', '--socket', '/nonexistent-dir/helper.sock']);
    expect(JSON.parse(j.err)).toMatchObject({ error: { errno: 'ENOENT' } });
  });
});

describe('blksnap-manager with a helper', () => {
  let d: SpawnedDaemon;
  let sock: string[];

  beforeAll(async () => {
    d = await spawnDaemon();
    sock = ['--socket', d.socketPath];
  });

  afterAll(async () => {
    await d?.cleanup();
  });

  it('reports missing options and driver errors by errno', async () => {
    expect(await run(['cbtinfo', ...sock])).toMatchObject({ code: 22, err: expect.stringContaining('missing --device') });
    expect(await run(['cbtinfo', '-d', 'nosuch', ...sock])).toMatchObject({ code: 2, err: expect.stringContaining('ENOENT') });
    expect(await run(['snapshot_create', '-d', 'x', '-f', join(d.dir, 'diff'), '-l', '12Q', ...sock])).toMatchObject({ code: 22 });
  });

  it('prints JSON with --json', async () => {
    const created = await run(['image', 'create', '--path', join(d.dir, 'j.img'), '--size', '1M', '--json', ...sock]);
    expect(created.code).toBe(0);
    expect(JSON.parse(created.out)).toMatchObject({ name: 'j', capacity: 1048576, nbdUri: expect.stringContaining('nbd+unix:///j?socket=') });
    const list = await run(['image', 'list', '--json', ...sock]);
    expect(JSON.parse(list.out)).toEqual({ images: [expect.objectContaining({ name: 'j' })] });
    const exp = await run(['exports', '--json', ...sock]);
    expect(JSON.parse(exp.out)).toMatchObject({ exports: [expect.objectContaining({ name: 'j', kind: 'device', readOnly: false })] });
    expect((await run(['image', 'remove', 'j', ...sock])).code).toBe(0);
  });

  it('snapshot_create --writable-images: exports and snapshots say rw for that snapshot only', async () => {
    for (const name of ['w1', 'w2']) expect((await run(['image', 'create', '--path', join(d.dir, `${name}.img`), '--size', '1M', ...sock])).code).toBe(0);
    const plain = (await run(['snapshot_create', '-d', 'w1', '-f', join(d.dir, 'diff-w1'), '-l', '1M', ...sock])).out.trim();
    const writable = await run(['snapshot_create', '-d', 'w2', '-f', join(d.dir, 'diff-w2'), '-l', '1M', '--writable-images', '--name', 'nightly run', ...sock]);
    expect(writable.err).toBe('');
    const rw = writable.out.trim();
    for (const id of [plain, rw]) expect((await run(['snapshot_take', '-i', id, ...sock])).code).toBe(0);
    const exportLines = (await run(['exports', ...sock])).out.split('\n');
    expect(exportLines.filter((l) => l.startsWith('snapshot-image'))).toEqual([
      expect.stringMatching(/^snapshot-image\s+blksnap-image\d+\s+ro\s/),
      expect.stringMatching(/^snapshot-image\s+blksnap-image\d+\s+rw\s/),
    ]);
    const snapshots = (await run(['snapshots', ...sock])).out;
    const when = '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d';
    expect(snapshots).toMatch(new RegExp(`^${plain}\\s+-\\s+taken\\s+${when}\\s+${when}\\s+ro\\s+w1\\s`, 'm'));
    expect(snapshots).toMatch(new RegExp(`^${rw}\\s+nightly run\\s+taken\\s+${when}\\s+${when}\\s+rw\\s+w2\\s`, 'm'));
    const json = JSON.parse((await run(['snapshots', '--json', ...sock])).out) as { snapshots: { id: string; writableImages: boolean; name: string | null; takenMs: number }[] };
    expect(json.snapshots.find((s) => s.id === rw)?.name).toBe('nightly run');
    expect(json.snapshots.find((s) => s.id === rw)?.takenMs).toBeGreaterThan(Date.now() - 600_000);
    expect(json.snapshots.map((s) => [s.id, s.writableImages])).toEqual(expect.arrayContaining([[plain, false], [rw, true]]));
    for (const id of [plain, rw]) expect((await run(['snapshot_destroy', '-i', id, ...sock])).code).toBe(0);
    for (const name of ['w1', 'w2']) expect((await run(['image', 'remove', name, ...sock])).code).toBe(0);
  });

  it.skipIf(!hasCommand('qemu-io'))('[qemu-io] readcbtmap writes the expected map byte for byte after known writes', async () => {
    const img = join(d.dir, 'cbt.img');
    const created = await run(['image', 'create', '--path', img, '--size', '16M', ...sock]);
    const uri = /^nbd=(.*)$/m.exec(created.out)?.[1] ?? '';
    expect(uri).toContain('nbd+unix:///cbt?socket=');
    // snapshot 1 attaches the tracker; the writes below are changes since it
    const first = (await run(['snapshot_create', '-d', img, '-f', join(d.dir, 'diff1'), '-l', '64M', ...sock])).out.trim();
    expect((await run(['snapshot_take', '-i', first, ...sock])).code).toBe(0);
    expect((await run(['snapshot_destroy', '-i', first, ...sock])).code).toBe(0);
    const writes: [number, number][] = [
      [0, 4096],
      [3 * 65536 + 512, 512],
      [10 * 65536 - 512, 1024],
      [16 * 1024 * 1024 - 4096, 4096],
    ];
    execFileSync('qemu-io', ['-f', 'raw', ...writes.flatMap(([o, l]) => ['-c', `write ${o} ${l}`]), uri], { stdio: 'pipe' });
    // snapshot 2: its CBT copy holds the changes made since snapshot 1
    const second = (await run(['snapshot_create', '-d', 'cbt', '-f', join(d.dir, 'diff2'), '-l', '64M', ...sock])).out.trim();
    expect((await run(['snapshot_take', '-i', second, ...sock])).code).toBe(0);
    const info = JSON.parse((await run(['cbtinfo', '-d', 'cbt', '--json', ...sock])).out) as { blockSize: number; blockCount: number; changesNumber: number };
    const file = join(d.dir, 'cbt.map');
    expect((await run(['readcbtmap', '-d', 'cbt', '-f', file, ...sock])).code).toBe(0);
    const expected = new Uint8Array(info.blockCount);
    for (const [offset, length] of writes) {
      for (let b = Math.floor(offset / info.blockSize); b <= Math.floor((offset + length - 1) / info.blockSize); b++) expected[b] = info.changesNumber;
    }
    expect(info.changesNumber).toBeGreaterThan(0);
    expect(new Uint8Array(readFileSync(file))).toEqual(expected);
    expect((await run(['snapshot_destroy', '-i', second, ...sock])).code).toBe(0);
  });
});

describe('blksnap-manager readcbtmap over several portions', () => {
  let d: SpawnedDaemon;

  beforeAll(async () => {
    // 512-byte tracking blocks: a 300 MiB image has 614,400 blocks, more than one cbtMap portion
    d = await spawnDaemon(['--param', 'trackingBlockMinimumShift=9']);
  });

  afterAll(async () => {
    await d?.cleanup();
  });

  it('writes the whole map, with markdirtyblock ranges in both portions', async () => {
    const sock = ['--socket', d.socketPath];
    expect((await run(['image', 'create', '--path', join(d.dir, 'big.img'), '--size', '300M', ...sock])).code).toBe(0);
    const id = (await run(['snapshot_create', '-d', 'big', '-f', join(d.dir, 'diff'), '-l', '64M', ...sock])).out.trim();
    expect((await run(['snapshot_take', '-i', id, ...sock])).code).toBe(0);
    expect((await run(['markdirtyblock', '-d', 'big', '-r', '600000:2', '-r', '5:1', ...sock])).code).toBe(0);
    const info = JSON.parse((await run(['cbtinfo', '-d', 'big', '--json', ...sock])).out) as { blockSize: number; blockCount: number; changesNumber: number };
    expect(info).toMatchObject({ blockSize: 512, blockCount: 614400 });
    expect(info.changesNumber).toBeGreaterThan(0);
    const file = join(d.dir, 'big.map');
    const r = await run(['readcbtmap', '-d', join(d.dir, 'big.img'), '-f', file, '--json', ...sock]);
    expect(JSON.parse(r.out)).toMatchObject({ length: 614400 });
    const expected = new Uint8Array(614400);
    expected[5] = info.changesNumber;
    expected[600000] = info.changesNumber;
    expected[600001] = info.changesNumber;
    expect(Buffer.compare(readFileSync(file), Buffer.from(expected))).toBe(0);
    // --active: the write table, where cbtdirty put the active number (the read table has the previous one)
    const activeFile = join(d.dir, 'big.active.map');
    const a = await run(['readcbtmap', '-d', 'big', '-f', activeFile, '--active', ...sock]);
    expect(a.code).toBe(0);
    expect(a.out).toContain('table=active');
    const active = readFileSync(activeFile);
    expect(active.length).toBe(614400);
    expect([active[5], active[600000], active[600001], active[4]]).toEqual([info.changesNumber + 1, info.changesNumber + 1, info.changesNumber + 1, 0]);
    expect((await run(['snapshot_destroy', '-i', id, ...sock])).code).toBe(0);
  });
});
