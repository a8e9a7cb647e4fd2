// @vitest-environment jsdom
import { act, cleanup, fireEvent, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeBase64 } from '../../../../app/shared/base64.js';
import { ok } from '../../../../app/shared/result.js';
import type { CbtMapEntry } from '../../../../app/shared/types.js';
import { EMBEDDED_STATUS, renderApp } from '../../render-app.js';
import type { Handlers } from '../../fake-api.js';
import { GiB, MiB, device, filesystem, job, planEntry } from '../../fixtures.js';

afterEach(cleanup);

const KiB = 1024;
const BLOCKS = 16384;
const CHANGED = 400;

/** disk1's live CBT map: changes number 2 at the last take, CHANGED blocks written since (number 3). */
function cbtMap(): CbtMapEntry {
  const map = new Uint8Array(BLOCKS).fill(1);
  map.fill(3, 0, CHANGED);
  return {
    device: 'disk1',
    capacityBytes: GiB,
    blockSize: 64 * KiB,
    blockCount: BLOCKS,
    generationId: 'g1',
    changesNumber: 2,
    table: 'active',
    activeNumber: 3,
    encoding: 'base64',
    data: encodeBase64(map),
  };
}

const brokenChain = planEntry('disk1', {
  points: 2,
  lastPoint: { id: '0002-20261201-140200-incremental', kind: 'incremental', time: '2026-12-01T14:02:00Z' },
  allowed: ['full'],
  reason: 'the change tracker was reset (new generation id: the machine rebooted or the module was reloaded)',
});

function handlers(extra: Handlers = {}): Handlers {
  return {
    getStatus: () => ok({ ...EMBEDDED_STATUS, capabilities: ['cbt-active-table'] }),
    listDevices: () => ok([device('disk1', { tracked: true }), device('disk2')]),
    listFilesystems: () => ok([filesystem('/'), filesystem('/var/tmp', { source: 'tmpfs', totalBytes: 4 * GiB, freeBytes: 3 * GiB })]),
    cbtMap: () => ok(cbtMap()),
    snapshotCreate: () => ok({ snapshotId: 's1' }),
    snapshotTake: () => ok(null),
    snapshotDestroy: () => ok(null),
    backupPlan: () => ok({ devices: [brokenChain] }),
    backupStart: () => ok({ jobId: 'b1' }),
    backupVerify: () => ok({ jobId: 'v1' }),
    ...extra,
  };
}

function stepHeading(): string {
  return screen.getByRole('heading', { level: 3 }).textContent ?? '';
}

async function openWizard(extra: Handlers = {}) {
  const app = renderApp(handlers(extra));
  await screen.findByText(/Helper connected|connected/);
  fireEvent.click(screen.getByRole('button', { name: 'Backup' }));
  await screen.findByTestId('wizard-device-disk1');
  return app;
}

/** Devices → storage → snapshot → target, as far as the kind step. */
async function throughTarget() {
  fireEvent.click(screen.getByTestId('wizard-device-disk1'));
  fireEvent.click(screen.getByTestId('wizard-next'));
  await waitFor(() => expect((screen.getByTestId('wizard-storage-limit') as HTMLInputElement).value).not.toBe(''));
  fireEvent.change(screen.getByTestId('wizard-storage-dir'), { target: { value: '/var/tmp' } });
  fireEvent.click(screen.getByTestId('wizard-next'));
  fireEvent.click(await screen.findByTestId('wizard-take'));
  await screen.findByTestId('wizard-backup-dir');
  fireEvent.change(screen.getByTestId('wizard-backup-dir'), { target: { value: '/srv/backup' } });
  fireEvent.click(screen.getByTestId('wizard-next'));
  await screen.findByTestId('wizard-step-kind');
}

describe('Backup wizard', () => {
  it('asks for a device, then sizes the storage from the changed blocks with chunk amplification', async () => {
    await openWizard();
    fireEvent.click(screen.getByTestId('wizard-next'));
    expect(screen.getByTestId('wizard-devices-error').textContent).toBe('Choose at least one device.');
    fireEvent.click(screen.getByTestId('wizard-device-disk1'));
    fireEvent.click(screen.getByTestId('wizard-next'));
    // The focus follows to the new step.
    await waitFor(() => expect(document.activeElement?.textContent).toBe('Step 2 of 8: Difference storage'));
    // 400 blocks of 64 KiB, each copying a 256 KiB chunk = 100 MiB, twice for room = 200 MiB.
    await waitFor(() => expect((screen.getByTestId('wizard-storage-limit') as HTMLInputElement).value).toBe('200'));
    expect(screen.getByTestId('wizard-estimate').textContent).toMatch(/400 tracking blocks \(blocks written since the last snapshot was taken\)/);
    expect(screen.getByTestId('wizard-estimate').textContent).toMatch(/suggested limit is 200 MiB/);
  });

  it('shows errors next to the storage fields instead of correcting them', async () => {
    await openWizard();
    fireEvent.click(screen.getByTestId('wizard-device-disk1'));
    fireEvent.click(screen.getByTestId('wizard-next'));
    await screen.findByTestId('wizard-storage-dir');
    fireEvent.change(screen.getByTestId('wizard-storage-dir'), { target: { value: 'tmp' } });
    fireEvent.change(screen.getByTestId('wizard-storage-limit'), { target: { value: '12x' } });
    fireEvent.click(screen.getByTestId('wizard-next'));
    expect(screen.getByTestId('wizard-storage-dir-error').textContent).toMatch(/absolute path/);
    expect(screen.getByTestId('wizard-storage-limit-error').textContent).toBe('"12x" is not a number: enter the limit in MiB with digits and at most one decimal point (e.g. 64 or 1.5).');
    expect(screen.getByTestId('wizard-storage-dir').getAttribute('aria-describedby')).toBe('wizard-storage-dir-error');
    expect(stepHeading()).toBe('Step 2 of 8: Difference storage');
  });

  it('takes the snapshot with the estimated storage and reads the plan of the folder for it', async () => {
    const { fake } = await openWizard();
    await throughTarget();
    // the wizard's snapshot keeps its images read-only: the backup is of the take
    expect(fake.paramsOf('snapshotCreate')).toEqual([{ devices: ['disk1'], storagePath: '/var/tmp/blksnap-diff-7.img', limitBytes: 200 * MiB, writableImages: false }]);
    expect(fake.paramsOf('snapshotTake')).toEqual([{ snapshotId: 's1' }]);
    expect(fake.paramsOf('backupPlan')).toEqual([{ dir: '/srv/backup', snapshotId: 's1', devices: ['disk1'] }]);
  });

  it('explains why the chain cannot continue and needs "make a new full backup" before running', async () => {
    const { fake } = await openWizard();
    await throughTarget();
    expect(screen.getByTestId('wizard-reason').textContent).toMatch(
      /disk1: the change tracker was reset \(new generation id: the machine rebooted or the module was reloaded\)/,
    );
    expect((screen.getByTestId('wizard-kind-incremental') as HTMLInputElement).disabled).toBe(true);
    expect((screen.getByTestId('wizard-kind-differential') as HTMLInputElement).disabled).toBe(true);
    fireEvent.click(screen.getByTestId('wizard-next'));
    expect(screen.getByTestId('wizard-kind-error').textContent).toMatch(/Make a new full backup/);
    expect(stepHeading()).toBe('Step 5 of 8: Kind');
    fireEvent.click(screen.getByTestId('wizard-allow-full'));
    fireEvent.click(screen.getByTestId('wizard-next'));
    fireEvent.click(await screen.findByTestId('wizard-start'));
    await waitFor(() => expect(fake.paramsOf('backupStart')).toHaveLength(1));
    expect(fake.paramsOf('backupStart')[0]).toEqual({ snapshotId: 's1', dir: '/srv/backup', devices: ['disk1'], kind: 'full', format: 'qcow2', allowFull: true });
  });

  it('offers incremental by default when every chain can continue', async () => {
    const continuing = planEntry('disk1', { ...brokenChain, allowed: ['full', 'incremental', 'differential'], reason: null });
    const { fake } = await openWizard({ backupPlan: () => ok({ devices: [continuing] }) });
    await throughTarget();
    expect((screen.getByTestId('wizard-kind-incremental') as HTMLInputElement).checked).toBe(true);
    expect(screen.queryByTestId('wizard-reason')).toBeNull();
    expect(screen.queryByTestId('wizard-allow-full')).toBeNull();
    fireEvent.click(screen.getByTestId('wizard-next'));
    fireEvent.click(await screen.findByTestId('wizard-start'));
    await waitFor(() => expect(fake.paramsOf('backupStart')[0]?.kind).toBe('incremental'));
    expect(fake.paramsOf('backupStart')[0]?.allowFull).toBeUndefined();
  });

  it('refuses an incremental into a raw image next to the choice, without changing either', async () => {
    const continuing = planEntry('disk1', { ...brokenChain, allowed: ['full', 'incremental', 'differential'], reason: null });
    const { fake } = await openWizard({ backupPlan: () => ok({ devices: [continuing] }) });
    await throughTarget();
    fireEvent.change(screen.getByTestId('wizard-format'), { target: { value: 'raw' } });
    fireEvent.click(screen.getByTestId('wizard-next'));
    expect(screen.getByTestId('wizard-kind-error').textContent).toMatch(/raw image holds a full backup only/);
    expect((screen.getByTestId('wizard-kind-incremental') as HTMLInputElement).checked).toBe(true);
    expect((screen.getByTestId('wizard-format') as HTMLSelectElement).value).toBe('raw');
    expect(stepHeading()).toBe('Step 5 of 8: Kind');
    fireEvent.click(screen.getByTestId('wizard-kind-full'));
    fireEvent.click(screen.getByTestId('wizard-next'));
    fireEvent.click(await screen.findByTestId('wizard-start'));
    await waitFor(() => expect(fake.paramsOf('backupStart')[0]).toMatchObject({ kind: 'full', format: 'raw' }));
  });

  it('offers zlib and zstd compression for qcow2, none for raw, and sends the choice', async () => {
    const continuing = planEntry('disk1', { ...brokenChain, allowed: ['full', 'incremental', 'differential'], reason: null });
    const { fake } = await openWizard({ backupPlan: () => ok({ devices: [continuing] }) });
    await throughTarget();
    const compress = (): HTMLSelectElement => screen.getByTestId('wizard-compress') as HTMLSelectElement;
    expect(compress().value).toBe('none');
    expect([...compress().options].map((o) => o.value)).toEqual(['none', 'zlib', 'zstd']);
    expect(screen.getByLabelText('Compression')).toBe(compress());
    fireEvent.change(compress(), { target: { value: 'zstd' } });
    // raw has no compressed clusters: choosing it disables the choice and drops it
    fireEvent.change(screen.getByTestId('wizard-format'), { target: { value: 'raw' } });
    expect(compress().disabled).toBe(true);
    expect(compress().value).toBe('none');
    fireEvent.change(screen.getByTestId('wizard-format'), { target: { value: 'qcow2' } });
    expect(compress().disabled).toBe(false);
    fireEvent.change(compress(), { target: { value: 'zstd' } });
    fireEvent.click(screen.getByTestId('wizard-next'));
    expect(await screen.findByText(/Incremental backup, qcow2, compressed \(zstd\)\./)).toBeTruthy();
    fireEvent.click(screen.getByTestId('wizard-start'));
    await waitFor(() => expect(fake.paramsOf('backupStart')).toHaveLength(1));
    expect(fake.paramsOf('backupStart')[0]).toMatchObject({ kind: 'incremental', format: 'qcow2', compress: 'zstd' });
  });

  it('runs, follows the job, verifies each point in its chain folder and releases the snapshot', async () => {
    const { fake } = await openWizard();
    await throughTarget();
    fireEvent.click(screen.getByTestId('wizard-allow-full'));
    fireEvent.click(screen.getByTestId('wizard-next'));
    fireEvent.click(await screen.findByTestId('wizard-start'));
    await waitFor(() => expect(fake.paramsOf('backupStart')).toHaveLength(1));
    act(() => fake.emit('onJob', job('b1', { done: 256 * MiB, total: GiB, bytesPerSecond: 64 * MiB, etaSeconds: 12 })));
    expect(screen.getByTestId('wizard-backup-job').textContent).toMatch(/256 MiB of 1 GiB \(25%\).*64 MiB\/s, about 12 s left/);
    expect(screen.queryByTestId('wizard-next')).toBeNull();
    const points = [{ device: 'disk1', chainDir: '/srv/backup/disk1', pointId: '0003-20261202-060000-full', pointKind: 'full' as const, fullBecause: brokenChain.reason, bytesWritten: 300 * MiB, changedBytes: GiB }];
    act(() => fake.emit('onJob', job('b1', { state: 'done', done: GiB, total: GiB, endedAt: '2026-12-02T06:01:00Z', result: { kind: 'backup', points } })));
    expect(screen.getByTestId('wizard-backup-points').textContent).toMatch(/disk1: full point 0003-20261202-060000-full, 300 MiB written.*A full backup was made: the change tracker was reset/);
    fireEvent.click(screen.getByTestId('wizard-next'));
    fireEvent.click(await screen.findByTestId('wizard-verify'));
    await waitFor(() => expect(fake.paramsOf('backupVerify')).toEqual([{ dir: '/srv/backup/disk1', point: '0003-20261202-060000-full' }]));
    act(() => fake.emit('onJob', job('v1', { kind: 'verify', state: 'done', done: GiB, result: { kind: 'verify', ok: true, points: [{ pointId: points[0]!.pointId, ok: true, problem: null }] } })));
    expect(screen.getByTestId('wizard-verified').textContent).toBe('The backup is verified.');
    fireEvent.click(screen.getByTestId('wizard-next'));
    fireEvent.click(await screen.findByTestId('wizard-release'));
    await screen.findByTestId('wizard-released');
    expect(fake.paramsOf('snapshotDestroy')).toEqual([{ snapshotId: 's1' }]);
  });

  it('offers "make a new full backup" when a backup fails because the chain broke meanwhile', async () => {
    const continuing = planEntry('disk1', { ...brokenChain, allowed: ['full', 'incremental', 'differential'], reason: null });
    const { fake } = await openWizard({ backupPlan: () => ok({ devices: [continuing] }) });
    await throughTarget();
    fireEvent.click(screen.getByTestId('wizard-next'));
    fireEvent.click(await screen.findByTestId('wizard-start'));
    await waitFor(() => expect(fake.paramsOf('backupStart')).toHaveLength(1));
    act(() => fake.emit('onJob', job('b1', { state: 'failed', error: { code: 'ESTALE', message: 'the device grew from 20 GiB to 30 GiB' } })));
    expect(screen.getByTestId('wizard-backup-job').textContent).toMatch(/Failed: the device grew from 20 GiB to 30 GiB/);
    fireEvent.click(screen.getByTestId('wizard-allow-full-retry'));
    fireEvent.click(screen.getByTestId('wizard-start'));
    await waitFor(() => expect(fake.paramsOf('backupStart')).toHaveLength(2));
    expect(fake.paramsOf('backupStart')[1]).toMatchObject({ kind: 'full', allowFull: true });
  });
});
