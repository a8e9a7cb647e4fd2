/** The blksnap tool's flow as a shell script through the blksnap-manager CLI. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCommand } from '../../helpers/env.js';
import { REPO, spawnDaemon } from '../helper/spawn-daemon.js';
import type { SpawnedDaemon } from '../helper/spawn-daemon.js';

describe.skipIf(!hasCommand('bash'))('[bash] blksnap-flow.sh', () => {
  let d: SpawnedDaemon;

  beforeAll(async () => {
    d = await spawnDaemon(['--param', 'diffStorageMinimum=2048', '--param', 'chunkMinimumShift=16']);
  });

  afterAll(async () => {
    await d?.cleanup();
  });

  it(`runs image create, snapshot_create/add/take/info, watcher, overflow, readcbtmap and destroy${hasCommand('qemu-io') ? ' (writes with qemu-io)' : ' (writes with the helper workload: no qemu-io)'}`, () => {
    const r = spawnSync('bash', [join(REPO, 'test/engine/cli/blksnap-flow.sh')], {
      env: { ...process.env, REPO, SOCK: d.socketPath, WORK: d.dir },
      encoding: 'utf8',
      timeout: 90_000,
    });
    expect(r.stderr + r.stdout).toContain('FLOW OK');
    expect(r.status).toBe(0);
  }, 100_000);
});
