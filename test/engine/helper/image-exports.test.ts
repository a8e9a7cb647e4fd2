/**
 * The helper's NBD exports of snapshot images, driven by real qemu-io: read-only
 * unless the snapshot was created with writableImages, and exports.list /
 * snapshots.list say which.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HelperClient } from '../../../engine/protocol/client.js';
import { hasCommand } from '../../helpers/env.js';
import { connectClient, spawnDaemon } from './spawn-daemon.js';
import type { SpawnedDaemon } from './spawn-daemon.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

async function qemuIo(uri: string, commands: string[], readOnly = false): Promise<string> {
  const args = ['-f', 'raw', ...(readOnly ? ['-r'] : []), ...commands.flatMap((c) => ['-c', c]), uri];
  const { stdout } = await run('qemu-io', args);
  return stdout;
}

describe.skipIf(!hasCommand('qemu-io'))('[qemu-io] snapshot image exports of the helper', () => {
  let d: SpawnedDaemon;
  let client: HelperClient;

  beforeAll(async () => {
    d = await spawnDaemon();
    client = await connectClient(d.socketPath);
    for (const name of ['ro', 'rw']) {
      const image = await client.call('images.create', { path: join(d.dir, `${name}.img`), size: 4 * MiB, name });
      // known content before the take: 0x11 at the start of both devices
      await qemuIo(image.nbdUri ?? '', ['write -P 0x11 0 64k']);
    }
  });

  afterAll(async () => {
    client?.close();
    await d?.cleanup();
  });

  it('exports a default snapshot image read-only (qemu-io write fails, content unchanged) and a writableImages one read-write', async () => {
    const ro = await client.call('snapshotCreate', { diffStoragePath: join(d.dir, 'diff-ro'), limitSectors: 16384, devices: ['ro'] });
    const rw = await client.call('snapshotCreate', { diffStoragePath: join(d.dir, 'diff-rw'), limitSectors: 16384, devices: ['rw'], writableImages: true });
    await client.call('snapshotTake', { id: ro.id });
    await client.call('snapshotTake', { id: rw.id });

    const { exports } = await client.call('exports.list', {});
    const roImage = exports.find((e) => e.kind === 'snapshot-image' && e.device === 'ro');
    const rwImage = exports.find((e) => e.kind === 'snapshot-image' && e.device === 'rw');
    expect(roImage).toMatchObject({ snapshotId: ro.id, readOnly: true });
    expect(rwImage).toMatchObject({ snapshotId: rw.id, readOnly: false });
    expect(exports.filter((e) => e.kind === 'device').map((e) => [e.name, e.readOnly])).toEqual([
      ['ro', false],
      ['rw', false],
    ]);
    const { snapshots } = await client.call('snapshots.list', {});
    expect(Object.fromEntries(snapshots.map((s) => [s.id, s.writableImages]))).toEqual({ [ro.id]: false, [rw.id]: true });

    // the default image: qemu-io cannot write it, and it still holds the content at take
    await expect(qemuIo(roImage?.uri ?? '', ['write -P 0x77 0 4k'])).rejects.toThrow(/read-only|Permission denied|Operation not permitted/i);
    expect(await qemuIo(roImage?.uri ?? '', ['read -P 0x11 0 64k'], true)).not.toMatch(/fail/i);

    // the writable image takes the write (into the difference storage); its device keeps its own content
    await qemuIo(rwImage?.uri ?? '', ['write -P 0x77 0 4k']);
    expect(await qemuIo(rwImage?.uri ?? '', ['read -P 0x77 0 4k', 'read -P 0x11 4k 60k'], true)).not.toMatch(/fail/i);
    const device = exports.find((e) => e.name === 'rw');
    expect(await qemuIo(device?.uri ?? '', ['read -P 0x11 0 64k'], true)).not.toMatch(/fail/i);

    await client.call('snapshotDestroy', { id: ro.id });
    await client.call('snapshotDestroy', { id: rw.id });
  });
});
