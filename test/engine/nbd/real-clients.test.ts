/**
 * The real-client scenarios: the embedded engine's devices and snapshot
 * images served by the NBD server, driven by qemu-io, qemu-img, nbdcopy and
 * (as root) nbdfuse + losetup + ext4. External tools run asynchronously: the
 * server and the engine live in this process.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import { engineExports } from '../../../engine/nbd/engine-exports.js';
import { NbdServer } from '../../../engine/nbd/server.js';
import { canUseFuse, canUseLoop, hasCommand } from '../../helpers/env.js';
import { attachNbdLoop } from '../../helpers/nbd-loop.js';
import { RawNbdClient } from '../../helpers/nbd-raw-client.js';
import type { NbdLoop } from '../../helpers/nbd-loop.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

let dir: string;
let engine: EmbeddedEngine;
let server: NbdServer;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-engine-test-'));
  // Small chunks and storage portions so a test-sized disk exercises many of them.
  engine = createEmbeddedEngine({ params: { chunkMinimumShift: 16, diffStorageMinimum: 16384 } });
  server = new NbdServer({ exports: engineExports(engine), unixSocket: join(dir, 'nbd.sock') });
  await server.start();
});

afterEach(async () => {
  await server.close();
  await engine.close();
  await rm(dir, { recursive: true, force: true });
});

async function addDisk(name: string, size: number): Promise<void> {
  const path = join(dir, `${name}.img`);
  await writeFile(path, '');
  await truncate(path, size);
  await engine.addDevice({ path, name });
}

/** Creates a snapshot of `device`, takes it, and returns its id and image export name. */
async function takeSnapshot(device: string): Promise<{ id: string; image: string }> {
  const id = await engine.snapshotCreate({ diffStoragePath: join(dir, `diff-${device}.storage`), limitSectors: (256 * MiB) / 512 });
  await engine.snapshotAdd(id, device);
  await engine.snapshotTake(id);
  const image = engine.listImages().find((i) => i.device === device && i.snapshotId === id);
  if (image === undefined) throw new Error('no image after snapshotTake');
  return { id, image: image.name };
}

describe('NBD exports of the embedded engine', () => {
  it.skipIf(!hasCommand('qemu-io') || !hasCommand('nbdcopy') || !hasCommand('qemu-img'))(
    '[qemu-io, nbdcopy] writes through a device export while a snapshot is held; the image export keeps the content at take',
    async () => {
      await addDisk('disk1', 48 * MiB);
      const original = randomBytes(48 * MiB);
      const originalPath = join(dir, 'original.raw');
      await writeFile(originalPath, original);
      await run('nbdcopy', ['--flush', originalPath, server.uriFor('disk1')]);

      const { id, image } = await takeSnapshot('disk1');
      expect(image).toMatch(/^blksnap-image\d+$/);

      // Overwrite parts of the live device: aligned and chunk-straddling writes, zeroes, discard.
      await run('qemu-io', [
        '-f', 'raw',
        '-c', 'write -P 0xa1 0 1M',
        '-c', 'write -P 0xa2 5M 4k',
        '-c', 'aio_write -P 0xa3 12000k 200k',
        '-c', 'aio_write -P 0xa4 30M 3M',
        '-c', 'aio_flush',
        '-c', 'write -z 40M 1M',
        '-c', 'discard 44M 512k',
        '-c', 'write -P 0xa5 47M 4k',
        '-c', 'flush',
        server.uriFor('disk1'),
      ]);
      await run('qemu-io', ['-f', 'raw', '-r', '-c', 'read -P 0xa1 0 1M', '-c', 'read -P 0xa4 30M 3M', '-c', 'read -P 0 40M 1M', server.uriFor('disk1')]);

      // The image export, read by two different clients, is the content at take.
      const viaNbdcopy = join(dir, 'image-nbdcopy.raw');
      await run('nbdcopy', [server.uriFor(image), viaNbdcopy]);
      expect(sha256(await readFile(viaNbdcopy))).toBe(sha256(original));
      const viaQemu = join(dir, 'image-qemu.raw');
      await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', server.uriFor(image), viaQemu]);
      expect(sha256(await readFile(viaQemu))).toBe(sha256(original));

      // The device export has moved on.
      const live = join(dir, 'live.raw');
      await run('nbdcopy', [server.uriFor('disk1'), live]);
      const liveData = await readFile(live);
      expect(sha256(liveData)).not.toBe(sha256(original));
      expect(liveData.subarray(5 * MiB, 5 * MiB + 4096).every((b) => b === 0xa2)).toBe(true);
      expect(liveData.subarray(MiB, 5 * MiB).equals(original.subarray(MiB, 5 * MiB))).toBe(true);

      // The image is read-only over NBD, and gone from the exports after destroy.
      await expect(run('qemu-io', ['-f', 'raw', '-c', 'write 0 4k', server.uriFor(image)])).rejects.toThrow(/Permission denied|Operation not permitted/);
      await engine.snapshotDestroy(id);
      const { stdout } = await run('nbdinfo', ['--list', '--json', server.uriFor('')]);
      const names = (JSON.parse(stdout) as { exports: { 'export-name': string }[] }).exports.map((e) => e['export-name']);
      expect(names).toEqual(['disk1']);
      await expect(run('qemu-img', ['info', server.uriFor(image)])).rejects.toThrow(/export not available|unknown export/i);
    },
  );

  it.skipIf(!hasCommand('qemu-io'))(
    '[qemu-io] a write to a snapshot image export fails; WRITE, TRIM and WRITE_ZEROES are answered EPERM and the image keeps its content',
    async () => {
      await addDisk('disk1', 4 * MiB);
      await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5c 0 1M', server.uriFor('disk1')]);
      const { image } = await takeSnapshot('disk1');

      // qemu sees NBD_FLAG_READ_ONLY and will not open the image for writing.
      await expect(run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 4k', server.uriFor(image)])).rejects.toThrow(/Permission denied/);

      // A client that ignores the flag is refused by the server with EPERM (1).
      const client = await RawNbdClient.connect(join(dir, 'nbd.sock'));
      try {
        const replies = await client.goTo(image);
        const info = replies.find((r) => r.type === 3 && r.data.readUInt16BE(0) === 0);
        expect((info?.data.readUInt16BE(10) ?? 0) & 2).toBe(2); // NBD_FLAG_READ_ONLY
        client.sendRequest(1, { cookie: 1n, offset: 0n, length: 4096, payload: Buffer.alloc(4096, 0x11) }); // WRITE
        client.sendRequest(4, { cookie: 2n, offset: 0n, length: 4096 }); // TRIM
        client.sendRequest(6, { cookie: 3n, offset: 0n, length: 4096 }); // WRITE_ZEROES
        const errors = new Map<bigint, number>();
        for (let i = 0; i < 3; i++) {
          const reply = await client.readReply();
          errors.set(reply.cookie, reply.error);
        }
        expect(Object.fromEntries([...errors].map(([k, v]) => [String(k), v]))).toEqual({ '1': 1, '2': 1, '3': 1 });
      } finally {
        client.close();
      }
      await run('qemu-io', ['-f', 'raw', '-r', '-c', 'read -P 0x5c 0 1M', server.uriFor(image)]);
    },
  );

  it.skipIf(!canUseFuse || !canUseLoop || !hasCommand('nbdfuse') || !hasCommand('mkfs.ext4') || !hasCommand('fsfreeze'))(
    '[root] nbdfuse + losetup: ext4 on a device export, snapshot, change files; the image mounts read-only with the files at take',
    async () => {
      await addDisk('fsdisk', 64 * MiB);
      const blob = randomBytes(3 * MiB);
      const loops: NbdLoop[] = [];
      try {
        const live = await attachNbdLoop(server.uriFor('fsdisk'));
        loops.push(live);
        await run('mkfs.ext4', ['-q', '-F', live.loopDevice]);
        const mnt = await live.mount();
        await writeFile(join(mnt, 'keep.txt'), 'as at take\n');
        await writeFile(join(mnt, 'blob.bin'), blob);
        await mkdir(join(mnt, 'dir'));
        await writeFile(join(mnt, 'dir', 'inner.txt'), 'inner\n');

        // A consistent file system at take: freeze, take, thaw (what a backup tool does).
        await run('sync', ['-f', mnt]);
        await run('fsfreeze', ['--freeze', mnt]);
        let snapshot: { id: string; image: string };
        try {
          snapshot = await takeSnapshot('fsdisk');
        } finally {
          await run('fsfreeze', ['--unfreeze', mnt]);
        }

        await writeFile(join(mnt, 'keep.txt'), 'changed after take\n');
        await unlink(join(mnt, 'blob.bin'));
        await rm(join(mnt, 'dir'), { recursive: true });
        await writeFile(join(mnt, 'new.txt'), 'new\n');
        await writeFile(join(mnt, 'filler.bin'), randomBytes(8 * MiB));
        await run('sync', ['-f', mnt]);

        const frozen = await attachNbdLoop(server.uriFor(snapshot.image), { readOnly: true });
        loops.push(frozen);
        const imageMnt = await frozen.mount(['-o', 'ro,noload']);
        expect((await readdir(imageMnt)).sort()).toEqual(['blob.bin', 'dir', 'keep.txt', 'lost+found']);
        expect(await readFile(join(imageMnt, 'keep.txt'), 'utf8')).toBe('as at take\n');
        expect(sha256(await readFile(join(imageMnt, 'blob.bin')))).toBe(sha256(blob));
        expect(await readFile(join(imageMnt, 'dir', 'inner.txt'), 'utf8')).toBe('inner\n');

        // while the live file system has the changes
        expect((await readdir(mnt)).sort()).toEqual(['filler.bin', 'keep.txt', 'lost+found', 'new.txt']);
        expect(await readFile(join(mnt, 'keep.txt'), 'utf8')).toBe('changed after take\n');
      } finally {
        for (const loop of loops.reverse()) await loop.cleanup();
      }
    },
  );
});
