/** blksnap-manager events / events dismiss: the helper's kept events, after the snapshot is destroyed and across a helper restart. */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../engine/cli/main.js';
import { spawnDaemon } from '../helper/spawn-daemon.js';
import type { SpawnedDaemon } from '../helper/spawn-daemon.js';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
  return { code, out, err };
}

describe('blksnap-manager events', () => {
  let d: SpawnedDaemon;
  let S: string[];
  beforeAll(async () => {
    d = await spawnDaemon();
    S = ['--socket', d.socketPath];
  });
  afterAll(async () => {
    await d.cleanup();
  });

  it('lists a corruption of a destroyed snapshot with its meaning, still after a helper restart, until events dismiss', async () => {
    const first = await run(['events', ...S]);
    expect(first.err).toBe('');
    expect(first.out).toBe('no events kept (they are kept per snapshot while the helper runs, until dismissed)\n');
    expect((await run(['image', 'create', '--path', join(d.dir, 'small.img'), '--size', '16M', ...S])).code).toBe(0);
    const created = await run(['snapshot_create', '-d', 'small', '-f', join(d.dir, 'diff'), '-l', '1M', ...S]);
    expect(created.code).toBe(0);
    const id = created.out.trim();
    expect((await run(['snapshot_take', '-i', id, ...S])).code).toBe(0);
    expect((await run(['workload', 'start', '-d', 'small', '--rate', '64', '--pattern', 'sequential', ...S])).code).toBe(0);
    let listed = '';
    for (let i = 0; i < 200 && !listed.includes('corrupted'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      listed = (await run(['events', '--snapshot', id, ...S])).out;
    }
    await run(['workload', 'stop', '-d', 'small', ...S]);
    expect(listed).toMatch(new RegExp(`^${id}\\s+-\\s+held\\s+.*corrupted\\s+the image of small is corrupted: ENOSPC \\(-28\\): the difference storage is full`, 'm'));
    expect((await run(['snapshot_destroy', '-i', id, ...S])).code).toBe(0);

    // the helper is restarted: the destroyed snapshot's events are still there, with the date it ended
    await d.stop();
    d = await spawnDaemon([], {}, d.dir);
    const after = await run(['events', ...S]);
    expect(after.out.split('\n')[0]).toMatch(/^SNAPSHOT\s+NAME\s+ENDED\s+TIME\s+EVENT\s+MEANING$/);
    expect(after.out).toMatch(new RegExp(`^${id}\\s+-\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+.*corrupted\\s+the image of small`, 'm'));
    const asJson = JSON.parse((await run(['events', '--json', ...S])).out) as { snapshots: { snapshotId: string; endedMs: number | null; events: { code: string }[] }[] };
    expect(asJson.snapshots[0]).toMatchObject({ snapshotId: id, endedMs: expect.any(Number) as number });
    expect(asJson.snapshots[0]?.events.map((e) => e.code)).toContain('corrupted');

    expect(await run(['events', 'dismiss', '--id', id, ...S])).toMatchObject({ code: 0, out: '' });
    expect((await run(['events', ...S])).out).toMatch(/^no events kept/);
    const again = await run(['events', 'dismiss', '--id', id, ...S]);
    expect(again.code).toBe(3);
    expect(again.err).toMatch(/^blksnap-manager: ESRCH: no event history for snapshot /);
  });

  it('checks --id and --snapshot before asking the helper, naming the option', async () => {
    const r = await run(['events', 'dismiss', '--id', 'nope', '--socket', '/nonexistent/helper.sock']);
    expect(r.code).toBe(22);
    expect(r.err).toContain('--id must be a snapshot id');
    const s = await run(['events', '--snapshot', 'nope', ...S]);
    expect(s.code).toBe(22);
    expect(s.err).toContain('--snapshot must be a snapshot id');
  });
});
