/**
 * The NBD server against the real clients (nbdinfo, qemu-io, qemu-img, nbdcopy,
 * nbdfuse + losetup), serving in-memory devices. External tools run
 * asynchronously: the server lives in this process.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NbdServer } from '../../../engine/nbd/server.js';
import { staticExports } from '../../../engine/nbd/export-source.js';
import { canUseFuse, canUseLoop, hasCommand } from '../../helpers/env.js';
import { FileDevice } from '../../helpers/file-device.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { attachNbdLoop } from '../../helpers/nbd-loop.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

let dir: string;
let server: NbdServer;
const disk = new MemoryDevice({ name: 'disk1', capacity: 32 * MiB });
const image = new MemoryDevice({ name: 'blksnap-image0', capacity: 8 * MiB, readOnly: true, content: randomBytes(8 * MiB) });
const fsDisk = new MemoryDevice({ name: 'fsdisk', capacity: 64 * MiB });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-tools-test-'));
  server = new NbdServer({
    exports: staticExports([disk, image, fsDisk], { disk1: 'test disk', 'blksnap-image0': 'snapshot image' }),
    unixSocket: join(dir, 'nbd.sock'),
    tcpPort: 0,
  });
  await server.start();
});

afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('NBD server with real clients', () => {
  it.skipIf(!hasCommand('nbdinfo'))('[nbdinfo] lists the exports with sizes and read-only flags', async () => {
    const { stdout } = await run('nbdinfo', ['--list', '--json', server.uriFor('')]);
    const parsed = JSON.parse(stdout) as { exports: { 'export-name': string; 'export-size': number; is_read_only: boolean; description?: string }[] };
    const byName = new Map(parsed.exports.map((e) => [e['export-name'], e]));
    expect(byName.get('disk1')).toMatchObject({ 'export-size': 32 * MiB, is_read_only: false, description: 'test disk' });
    expect(byName.get('blksnap-image0')).toMatchObject({ 'export-size': 8 * MiB, is_read_only: true });
  });

  it.skipIf(!hasCommand('nbdinfo'))('[nbdinfo] reaches an export over TCP on 127.0.0.1', async () => {
    const uri = server.uriFor('blksnap-image0', 'tcp');
    expect(uri).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+\/blksnap-image0$/);
    const { stdout } = await run('nbdinfo', ['--json', uri]);
    const parsed = JSON.parse(stdout) as { exports: { 'export-size': number; is_read_only: boolean }[] };
    expect(parsed.exports[0]).toMatchObject({ 'export-size': 8 * MiB, is_read_only: true });
  });

  it.skipIf(!hasCommand('qemu-io'))('[qemu-io] writes patterns that read back through qemu-io and the device', async () => {
    const uri = server.uriFor('disk1');
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0xa5 0 1M', '-c', 'write -P 0x5a 3M 4k', '-c', 'aio_write -P 0x33 8M 64k', '-c', 'aio_flush', '-c', 'write -z 1M 512k', uri]);
    const { stdout } = await run('qemu-io', ['-f', 'raw', '-r', '-c', 'read -P 0xa5 0 1M', '-c', 'read -P 0x5a 3M 4k', '-c', 'read -P 0x33 8M 64k', '-c', 'read -P 0 1M 512k', '-c', 'read -P 0 1536k 100', uri]);
    expect(stdout).not.toMatch(/fail/i);
    expect(stdout.match(/^read /gm)?.length).toBe(5);
    expect(disk.data.subarray(0, MiB).every((b) => b === 0xa5)).toBe(true);
    expect(disk.data.subarray(3 * MiB, 3 * MiB + 4096).every((b) => b === 0x5a)).toBe(true);
    expect(disk.data.subarray(8 * MiB, 8 * MiB + 65536).every((b) => b === 0x33)).toBe(true);

    // and a wrong pattern is noticed (so the checks above can fail)
    await expect(run('qemu-io', ['-f', 'raw', '-r', '-c', 'read -P 0x77 0 4k', uri])).rejects.toMatchObject({
      stdout: expect.stringMatching(/Pattern verification failed/),
    });
  });

  it.skipIf(!hasCommand('qemu-io'))('[qemu-io] is refused writes on a read-only export', async () => {
    await expect(run('qemu-io', ['-f', 'raw', '-c', 'write 0 4k', server.uriFor('blksnap-image0')])).rejects.toThrow(/read-only|Permission denied/i);
  });

  it.skipIf(!hasCommand('nbdcopy'))('[nbdcopy] copies an export to a file and a file to an export, byte for byte', async () => {
    const out = join(dir, 'image.raw');
    await run('nbdcopy', [server.uriFor('blksnap-image0'), out]);
    expect(sha256(await readFile(out))).toBe(sha256(image.data));

    const src = join(dir, 'src.raw');
    const content = randomBytes(32 * MiB);
    await writeFile(src, content);
    await run('nbdcopy', ['--flush', src, server.uriFor('disk1')]);
    expect(sha256(disk.data)).toBe(sha256(content));
    expect(disk.flushes).toBeGreaterThan(0);
  });

  it.skipIf(!hasCommand('nbdcopy') || !hasCommand('qemu-io'))('[nbdcopy, qemu-io] a file-backed export round-trips and flushes', async () => {
    const path = join(dir, 'file-backed.img');
    await writeFile(path, Buffer.alloc(4 * MiB));
    const device = await FileDevice.open(path, { name: 'filedisk' });
    const fileServer = new NbdServer({ exports: staticExports([device]), unixSocket: join(dir, 'file.sock') });
    await fileServer.start();
    try {
      const content = randomBytes(4 * MiB);
      const src = join(dir, 'file-src.raw');
      await writeFile(src, content);
      await run('nbdcopy', ['--flush', src, fileServer.uriFor('filedisk')]);
      expect(sha256(await readFile(path))).toBe(sha256(content));
      await run('qemu-io', ['-f', 'raw', '-c', 'write -z 1M 64k', '-c', 'discard 2M 4k', '-c', 'write -f -P 0x66 3M 4k', fileServer.uriFor('filedisk')]);
      const after = await readFile(path);
      expect(after.subarray(MiB, MiB + 65536).every((b) => b === 0)).toBe(true);
      expect(after.subarray(3 * MiB, 3 * MiB + 4096).every((b) => b === 0x66)).toBe(true);
      const out = join(dir, 'file-out.raw');
      await run('nbdcopy', [fileServer.uriFor('filedisk'), out]);
      expect(sha256(await readFile(out))).toBe(sha256(after));
    } finally {
      await fileServer.close();
      await device.close();
    }
  });

  it.skipIf(!hasCommand('qemu-img'))('[qemu-img] converts an export and compares it equal', async () => {
    const out = join(dir, 'converted.raw');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', server.uriFor('blksnap-image0'), out]);
    expect(sha256(await readFile(out))).toBe(sha256(image.data));
    const { stdout } = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', out, server.uriFor('blksnap-image0')]);
    expect(stdout).toMatch(/identical/);
  });

  it.skipIf(!canUseFuse || !canUseLoop || !hasCommand('nbdfuse') || !hasCommand('mkfs.ext4'))(
    '[root] nbdfuse + losetup: mkfs.ext4 and files on an export, seen again through a second attach',
    async () => {
      const first = await attachNbdLoop(server.uriFor('fsdisk'));
      try {
        await run('mkfs.ext4', ['-q', '-F', first.loopDevice]);
        const mnt = await first.mount();
        await writeFile(join(mnt, 'hello.txt'), 'hello through nbd\n');
        await writeFile(join(mnt, 'blob.bin'), Buffer.alloc(3 * MiB, 0x42));
      } finally {
        await first.cleanup();
      }
      const second = await attachNbdLoop(server.uriFor('fsdisk'), { readOnly: true });
      try {
        const mnt = await second.mount(['-o', 'ro,noload']);
        expect((await readdir(mnt)).sort()).toEqual(['blob.bin', 'hello.txt', 'lost+found']);
        expect(await readFile(join(mnt, 'hello.txt'), 'utf8')).toBe('hello through nbd\n');
        expect(sha256(await readFile(join(mnt, 'blob.bin')))).toBe(sha256(Buffer.alloc(3 * MiB, 0x42)));
      } finally {
        await second.cleanup();
      }
      const { stdout } = await run('losetup', ['-j', second.fuseFile]);
      expect(stdout.trim()).toBe(''); // detached
    },
  );

  it.skipIf(!canUseFuse || !canUseLoop || !hasCommand('nbdfuse'))(
    '[root] attachNbdLoop fails cleanly for a missing export, leaving no mount behind',
    async () => {
      const fuseMounts = async (): Promise<number> =>
        (await readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.includes('nbd-loop-')).length;
      const before = await fuseMounts();
      await expect(attachNbdLoop(server.uriFor('no-such-export'), { timeoutMs: 5000 })).rejects.toThrow(/nbdfuse/);
      expect(await fuseMounts()).toBe(before);
    },
  );
});
