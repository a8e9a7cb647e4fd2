import { mkdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { JobEntry } from '../../../app/shared/types.js';
import { cleanUpBridges, setupBridge, value } from './bridge-fixture.js';

const MiB = 1024 * 1024;

cleanUpBridges();

describe('bridge: backups over a real helper', () => {
  it('plans, runs a full backup job with onJob progress, waits for it, and lists the point in the catalog', async () => {
    const { bridge, dirs } = setupBridge();
    await bridge.start();
    const events: JobEntry[] = [];
    bridge.api.onJob((job) => events.push(job));
    value(await bridge.api.createLabDisk({ name: 'disk1', sizeBytes: 8 * MiB }));
    const snap = value(await bridge.api.snapshotCreate({ devices: ['disk1'], storagePath: join(dirs.root, 'diff.img'), limitBytes: 32 * MiB }));
    value(await bridge.api.snapshotTake(snap));
    const dir = join(dirs.root, 'backup');
    await mkdir(dir);

    const plan = value(await bridge.api.backupPlan({ dir, snapshotId: snap.snapshotId }));
    expect(plan.devices).toHaveLength(1);
    expect(plan.devices[0]).toMatchObject({ device: 'disk1', points: 0, lastPoint: null, allowed: ['full'] });

    const { jobId } = value(await bridge.api.backupStart({ snapshotId: snap.snapshotId, dir, kind: 'full' }));
    const done = value(await bridge.api.jobsWait({ jobId, timeoutMs: 30_000 }));
    expect(done).toMatchObject({ jobId, kind: 'backup', state: 'done', total: 8 * MiB, done: 8 * MiB, error: null });
    expect(done.result?.kind).toBe('backup');
    const point = done.result?.kind === 'backup' ? done.result.points[0] : undefined;
    expect(point).toMatchObject({ device: 'disk1', pointKind: 'full', chainDir: join(dir, 'disk1') });
    // The job topic reached the contract's event stream, ending with the same state.
    for (let i = 0; i < 50 && !events.some((e) => e.jobId === jobId && e.state === 'done'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(events.filter((e) => e.jobId === jobId).at(-1)).toMatchObject({ state: 'done', done: 8 * MiB });
    expect(value(await bridge.api.jobsList()).map((j) => j.jobId)).toContain(jobId);

    const catalog = value(await bridge.api.backupCatalog({ dir }));
    expect(catalog.chains).toHaveLength(1);
    expect(catalog.chains[0]?.points.map((p) => [p.id, p.kind, p.verify])).toEqual([[point?.pointId, 'full', 'never']]);

    const cancelUnknown = await bridge.api.jobsCancel({ jobId: 'no-such-job' });
    expect(cancelUnknown.ok ? null : cancelUnknown.error.code).toBe('ESRCH');
    value(await bridge.api.snapshotDestroy(snap));
  });
});
