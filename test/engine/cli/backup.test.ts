/**
 * The backup commands of the CLI against a real helper: backup (table, --json
 * JobState lines, a progress bar on a terminal), catalog, verify, restore (--yes
 * required; the SHA-256 of the image at take), backup-export (URI and mount
 * commands), and Ctrl+C cancelling a running backup (exit 130, no point left).
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../engine/cli/main.js';
import type { HelperClient } from '../../../engine/protocol/client.js';
import { JobStateSchema } from '../../../engine/protocol/backup-schemas.js';
import { hasCommand } from '../../helpers/env.js';
import { deviceUri, imageUri, qemuWrite, sha256OfFile, sha256OfUri, takeSnapshot } from '../helper/backup-support.js';
import { REPO, connectClient, spawnDaemon } from '../helper/spawn-daemon.js';
import type { SpawnedDaemon } from '../helper/spawn-daemon.js';

const tools = hasCommand('qemu-io') && hasCommand('nbdcopy');
const BIN = join(REPO, 'bin/blksnap-manager.mjs');

describe.skipIf(!tools)('[qemu] blksnap-manager backup, catalog, verify, restore, backup-export', () => {
  let d: SpawnedDaemon;
  let client: HelperClient;
  let set: string;
  let id: string;
  let takeSha: string;

  async function run(argv: string[], isTty = false): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await main([...argv, '--socket', d.socketPath], { stdout: (t) => (out += t), stderr: (t) => (err += t), isTty });
    return { code, out, err };
  }

  beforeAll(async () => {
    d = await spawnDaemon();
    client = await connectClient(d.socketPath);
    await client.call('images.create', { path: join(d.dir, 'disk1.img'), size: 16 << 20 });
    await client.call('images.create', { path: join(d.dir, 'big.img'), size: 1 << 30 });
    qemuWrite(await deviceUri(client, 'disk1'), 0x61, '2M', '2M');
    id = await takeSnapshot(client, d.dir, ['disk1'], 'cli');
    takeSha = sha256OfUri(await imageUri(client, 'disk1'));
    set = join(d.dir, 'set');
    mkdirSync(set);
  });

  afterAll(async () => {
    client?.close();
    await d?.cleanup();
  });

  it('backup draws a progress bar on a terminal and prints the points', async () => {
    const r = await run(['backup', '-i', id, '-o', set], true);
    expect(r.err).toMatch(/\r\[#{30}\] 100% 16M\/16M/);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^DEVICE +POINT +KIND +WRITTEN +CHANGED\ndisk1 +0001-\d{8}-\d{6}-full +full /);
    // the full leaves its SHA-256 to the first verify: the CLI says which command seals it
    expect(r.err).toContain(`next: run "blksnap-manager verify ${set}"`);
    await client.call('snapshotDestroy', { id });
  });

  it('--json prints JobState lines, the last one done with the result; a second full is refused in words', async () => {
    const id2 = await takeSnapshot(client, d.dir, ['disk1'], 'cli2');
    const inc = await run(['backup', '-i', id2, '-o', set, '--kind', 'incremental', '--json']);
    expect(inc.code, inc.err).toBe(0);
    const lines = inc.out.trim().split('\n').map((l) => JobStateSchema.parse(JSON.parse(l)));
    expect(lines.at(-1)).toMatchObject({ state: 'done', result: { kind: 'backup', points: [{ device: 'disk1', pointKind: 'incremental' }] } });
    const again = await run(['backup', '-i', id2, '-o', set]);
    expect(again).toMatchObject({ code: 17, err: expect.stringMatching(/EEXIST: .*already holds a backup chain/) });
    await client.call('snapshotDestroy', { id: id2 });
  });

  it('catalog and verify list the points', async () => {
    const c = await run(['catalog', set]);
    expect(c.code, c.err).toBe(0);
    expect(c.out).toMatch(/^CHAIN +POINT +KIND +TIME +SIZE +VERIFY\n/);
    expect(c.out.trim().split('\n').slice(1).map((l) => l.split(/ +/)[2])).toEqual(['full', 'incremental']);
    const v = await run(['verify', set]);
    expect(v.code, v.err).toBe(0);
    expect(v.out.trim().split('\n').slice(1).map((l) => l.split(/ +/)[1])).toEqual(['ok', 'ok']);
    const json = JSON.parse((await run(['catalog', set, '--json'])).out) as { chains: { points: { verify: string }[] }[] };
    expect(json.chains[0]!.points.map((p) => p.verify)).toEqual(['ok', 'ok']);
    // both snapshots were released: there is nothing to compare with
    const against = await run(['verify', set, '--against-snapshot']);
    expect(against).toMatchObject({ code: 2, err: expect.stringMatching(/ENOENT: no backup in .* was taken from a snapshot that is still held/) });
  });

  it('restore needs --yes, then writes the image of the take', async () => {
    const point = (await client.call('backup.catalog', { dir: set })).chains[0]!.points[0]!.id;
    const target = join(d.dir, 'restored.img');
    expect(await run(['restore', set, '--point', point, '--to', target])).toMatchObject({ code: 22, err: expect.stringContaining('pass --yes to confirm') });
    const r = await run(['restore', set, '--point', point, '--to', target, '--yes']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`target=${target}\nbytes=${16 << 20}\nsha256=${takeSha}\n`);
    expect(sha256OfFile(target)).toBe(takeSha);
  });

  it('backup-export prints the URI and the read-only mount commands', async () => {
    const point = (await client.call('backup.catalog', { dir: set })).chains[0]!.points[0]!.id;
    const r = await run(['backup-export', set, '--point', point]);
    expect(r.code, r.err).toBe(0);
    const uri = /^uri=(.*)$/m.exec(r.out)?.[1] ?? '';
    expect(uri).toMatch(/^nbd\+unix:\/\/\/backup-disk1-/);
    expect(r.out).toContain(`nbdfuse /tmp/backup-disk1-${point} '${uri}' &`);
    expect(r.out).toMatch(/losetup -r -f --show/);
    expect(r.out).toMatch(/mount -o ro \$LOOP/);
  });

  it('Ctrl+C cancels the running backup: exit 130, the job cancelled, no point left', async () => {
    // data, not holes: a full skips holes, and the job must still be running at the Ctrl+C
    qemuWrite(await deviceUri(client, 'big'), 0x62, '0', '512M');
    const bigId = await takeSnapshot(client, d.dir, ['big'], 'sigint');
    const bigSet = join(d.dir, 'bigset');
    mkdirSync(bigSet);
    const child = spawn(process.execPath, [BIN, 'backup', '-i', bigId, '-o', bigSet, '--json', '--socket', d.socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let interrupted = false;
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (!interrupted && out.split('\n').some((l) => l.startsWith('{') && l.endsWith('}') && (JSON.parse(l) as { done: number }).done > 0)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    const code = await new Promise<number | null>((res) => child.once('exit', (c) => res(c)));
    expect(interrupted).toBe(true);
    expect(code).toBe(130);
    const last = JSON.parse(out.trim().split('\n').at(-1)!) as { state: string };
    expect(last.state).toBe('cancelled');
    expect((await client.call('backup.catalog', { dir: bigSet })).chains).toEqual([]);
  });
});
