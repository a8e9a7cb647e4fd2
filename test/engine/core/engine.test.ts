import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine, FILE_DEVICE_MAJOR } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import type { EngineDevice } from '../../../engine/core/engine-device.js';
import { expectErrno, makeImage, SMALL_PARAMS, tempDir } from './helpers.js';

const MiB = 1 << 20;
const NO_SUCH_ID = '00000000-0000-4000-8000-000000000000';

let dir: string;
let engine: EmbeddedEngine;

beforeEach(async () => {
  dir = tempDir('engine');
  engine = createEmbeddedEngine({ params: SMALL_PARAMS });
  await engine.addDevice({ path: makeImage(dir, 'a.img', MiB, 0xaa), name: 'a' });
  await engine.addDevice({ path: makeImage(dir, 'b.img', MiB, 0xbb), name: 'b' });
});

afterEach(async () => {
  await engine.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function snapshot(devices: string[], limitSectors = 1 << 20, file = 'diff'): Promise<string> {
  const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, file), limitSectors });
  for (const d of devices) await engine.snapshotAdd(id, d);
  return id;
}

describe('EmbeddedEngine: lifecycle', () => {
  it('reports the module version and its params', async () => {
    expect(await engine.version()).toEqual({ major: 2, minor: 0, revision: 0, build: 0 });
    expect(engine.kind).toBe('embedded');
    expect(engine.params.chunkMinimumShift).toBe(12);
    expect(createEmbeddedEngine().params.chunkMinimumShift).toBe(18);
  });

  it('lists devices with synthetic numbers and their snapshot', async () => {
    const devs = engine.listDevices();
    expect(devs.map((d) => [d.name, d.capacity, d.devMajor, d.attached])).toEqual([
      ['a', MiB, FILE_DEVICE_MAJOR, false],
      ['b', MiB, FILE_DEVICE_MAJOR, false],
    ]);
    expect(devs[0]!.devMinor).not.toBe(devs[1]!.devMinor);
    const id = await snapshot(['a']);
    expect(engine.listDevices().find((d) => d.name === 'a')).toMatchObject({ attached: true, snapshotId: id });
    // a device can be named by its path too
    expect(engine.device(path.join(dir, 'b.img')).name).toBe('b');
  });

  it('create -> add -> take -> info -> collect -> destroy, storage file created and removed', async () => {
    const storage = path.join(dir, 'diff');
    const id = await snapshot(['a', 'b']);
    expect(fs.existsSync(storage)).toBe(true);
    expect(await engine.snapshotInfo('a')).toEqual({ errorCode: 0, image: '' });
    await engine.snapshotTake(id);
    const ia = await engine.snapshotInfo('a');
    const ib = await engine.snapshotInfo('b');
    expect([ia.image, ib.image].sort()).toEqual(['blksnap-image0', 'blksnap-image1']);
    expect(engine.listImages().map((i) => [i.name, i.device, i.snapshotId, i.capacity])).toEqual([
      [ia.image, 'a', id, MiB],
      [ib.image, 'b', id, MiB],
    ]);
    expect(await engine.snapshotCollect()).toEqual([id]);
    const st = await engine.storageInfo(id);
    expect(st).toMatchObject({ snapshotId: id, path: storage, limitSectors: 1 << 20, allocatedSectors: 16, usedSectors: 0 });
    expect(fs.statSync(storage).size).toBe(16 * 512);

    await engine.device('a').write(0, Buffer.alloc(4096, 1));
    expect((await engine.image(ia.image).read(0, 4096)).every((x) => x === 0xaa)).toBe(true);

    await engine.snapshotDestroy(id);
    expect(fs.existsSync(storage)).toBe(false);
    expect(await engine.snapshotCollect()).toEqual([]);
    expect(engine.listImages()).toEqual([]);
    expect(await engine.snapshotInfo('a')).toEqual({ errorCode: 0, image: '' });
    // trackers keep tracking after destroy
    const before = await engine.cbtInfo('a');
    await engine.device('a').write(MiB - 4096, Buffer.alloc(4096, 2));
    const id2 = await snapshot(['a'], 1 << 20, 'diff2');
    await engine.snapshotTake(id2);
    const after = await engine.cbtInfo('a');
    expect(after.generationId).toBe(before.generationId);
    expect(after.changesNumber).toBe(before.changesNumber + 1);
    const map = await engine.cbtMap('a', 0, after.blockCount);
    // both writes (block 0 while the first snapshot was held, the last block after
    // its destroy) happened under the active number 2
    expect(map[map.length - 1]).toBe(after.changesNumber);
    expect(map[0]).toBe(after.changesNumber);
    expect(map[1]).toBe(0);
  });

  it('holds several snapshots at once, each with its own storage and images', async () => {
    const s1 = await snapshot(['a'], 1 << 20, 'd1');
    const s2 = await snapshot(['b'], 1 << 20, 'd2');
    await engine.snapshotTake(s2);
    await engine.snapshotTake(s1);
    expect((await engine.snapshotCollect()).sort()).toEqual([s1, s2].sort());
    expect((await engine.snapshotInfo('b')).image).toBe('blksnap-image0');
    expect((await engine.snapshotInfo('a')).image).toBe('blksnap-image1');
    await engine.snapshotDestroy(s2);
    expect(fs.existsSync(path.join(dir, 'd2'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'd1'))).toBe(true);
    // the smallest free image number is reused
    const s3 = await snapshot(['b'], 1 << 20, 'd3');
    await engine.snapshotTake(s3);
    expect((await engine.snapshotInfo('b')).image).toBe('blksnap-image0');
  });

  it('close() destroys snapshots and removes their storage files', async () => {
    const id = await snapshot(['a']);
    await engine.snapshotTake(id);
    await engine.close();
    expect(fs.readdirSync(dir).sort()).toEqual(['a.img', 'b.img']);
    engine = createEmbeddedEngine({ params: SMALL_PARAMS });
  });

  it('snapshot image writes go to the storage, never to the original, and mark both CBT tables', async () => {
    const id = await snapshot(['a']);
    await engine.snapshotTake(id);
    const img = engine.image((await engine.snapshotInfo('a')).image);
    expect(img.readOnly).toBe(false);
    expect(img.capacity).toBe(MiB);
    await img.write(8192, Buffer.alloc(1024, 7));
    expect((await img.read(8192, 1024)).every((x) => x === 7)).toBe(true);
    expect((await img.read(8192 + 1024, 512)).every((x) => x === 0xaa)).toBe(true);
    expect((await engine.device('a').read(8192, 1024)).every((x) => x === 0xaa)).toBe(true);
    const info = await engine.cbtInfo('a');
    const map = await engine.cbtMap('a', 0, info.blockCount);
    expect(map[2]).toBe(info.changesNumber); // read table marked with the previous number
    await img.writeZeroes(0, 4096);
    expect((await img.read(0, 4096)).every((x) => x === 0)).toBe(true);
    await img.discard(4096, 512);
    expect((await img.read(4096, 512)).every((x) => x === 0)).toBe(true);
    await img.flush();
  });

  it('waitEvent times out with null after the timeout', async () => {
    const id = await snapshot(['a']);
    const t0 = Date.now();
    expect(await engine.snapshotWaitEvent(id, 50)).toBeNull();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
    expect(await engine.snapshotWaitEvent(id, 0)).toBeNull();
  });

  it('a waiter is released with null when the snapshot is destroyed', async () => {
    const id = await snapshot(['a']);
    const waiting = engine.snapshotWaitEvent(id, 10_000);
    await engine.snapshotDestroy(id);
    expect(await waiting).toBeNull();
  });

  it('removeDevice closes the device; its BlockDevice then fails with ENODEV', async () => {
    const dev = engine.device('b');
    await engine.removeDevice('b');
    await expectErrno(dev.read(0, 512), 'ENODEV');
    await expectErrno(() => engine.device('b'), 'ENOENT');
    const info = await engine.addDevice({ path: path.join(dir, 'b.img') });
    expect(info.name).toBe('b');
  });

  it('removeDevice and close() wait for reads in flight before closing the file (no read from a reused descriptor)', async () => {
    for (const how of ['removeDevice', 'close'] as const) {
      const content = Buffer.alloc(64 * 1024, how === 'close' ? 0x5c : 0xc5);
      fs.writeFileSync(path.join(dir, 'c.img'), content);
      fs.writeFileSync(path.join(dir, 'other.img'), Buffer.alloc(64 * 1024, 0x11));
      await engine.addDevice({ path: path.join(dir, 'c.img'), name: 'c' });
      const dev = engine.device('c') as EngineDevice;
      // Hold the read between its submission and the file system call.
      let release = (): void => undefined;
      const held = new Promise<void>((resolve) => (release = resolve));
      const readInto = dev.raw.readInto.bind(dev.raw);
      dev.raw.readInto = async (buf, off, len, pos) => {
        await held;
        return readInto(buf, off, len, pos);
      };
      const reading = dev.read(0, content.length);
      const readingTo = dev.readTo(0, 4096, Buffer.alloc(4096), 0);
      let closed = false;
      const closing = (how === 'close' ? engine.close() : engine.removeDevice('c')).then(() => {
        closed = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(closed).toBe(false);
      // A file opened now must not take over the device's descriptor.
      const fd = fs.openSync(path.join(dir, 'other.img'), 'r');
      try {
        release();
        expect((await reading).equals(content)).toBe(true);
        await readingTo;
        await closing;
      } finally {
        fs.closeSync(fd);
      }
      await expectErrno(dev.read(0, 512), 'ENODEV');
    }
    engine = createEmbeddedEngine({ params: SMALL_PARAMS });
  });
});

describe('EmbeddedEngine: errnos', () => {
  it('EBUSY: a device in one snapshot only; detach/remove while in a snapshot; a path opened twice', async () => {
    const s1 = await snapshot(['a'], 1 << 20, 'd1');
    const s2 = await engine.snapshotCreate({ diffStoragePath: path.join(dir, 'd2'), limitSectors: 100 });
    await expectErrno(engine.snapshotAdd(s2, 'a'), 'EBUSY');
    await expectErrno(engine.detach('a'), 'EBUSY');
    await expectErrno(engine.removeDevice('a'), 'EBUSY');
    await expectErrno(engine.addDevice({ path: path.join(dir, 'a.img'), name: 'again' }), 'EBUSY');
    await engine.snapshotDestroy(s1);
    await engine.snapshotAdd(s2, 'a');
  });

  it('ESRCH for an unknown snapshot id (take, add, wait_event, storageInfo); ENODEV for destroy, as the module', async () => {
    await expectErrno(engine.snapshotTake(NO_SUCH_ID), 'ESRCH');
    await expectErrno(engine.snapshotAdd(NO_SUCH_ID, 'a'), 'ESRCH');
    await expectErrno(engine.snapshotWaitEvent(NO_SUCH_ID, 10), 'ESRCH');
    await expectErrno(engine.storageInfo(NO_SUCH_ID), 'ESRCH');
    await expectErrno(engine.snapshotDestroy(NO_SUCH_ID), 'ENODEV');
    const id = await snapshot([]);
    await engine.snapshotDestroy(id);
    await expectErrno(engine.snapshotDestroy(id), 'ENODEV');
    await expectErrno(engine.snapshotTake(id), 'ESRCH');
  });

  it('ENOENT: unknown device, image or path; filter commands without the filter attached', async () => {
    await expectErrno(engine.attach('nope'), 'ENOENT');
    await expectErrno(() => engine.device('nope'), 'ENOENT');
    await expectErrno(() => engine.image('blksnap-image0'), 'ENOENT');
    await expectErrno(engine.cbtInfo('a'), 'ENOENT');
    await expectErrno(engine.cbtMap('a', 0, 1), 'ENOENT');
    await expectErrno(engine.cbtDirty('a', [{ offset: 0, count: 1 }]), 'ENOENT');
    await expectErrno(engine.snapshotInfo('a'), 'ENOENT');
    await expectErrno(engine.detach('a'), 'ENOENT');
    await expectErrno(engine.addDevice({ path: path.join(dir, 'missing.img') }), 'ENOENT');
    await expectErrno(engine.snapshotCreate({ diffStoragePath: path.join(dir, 'no', 'such', 'dir'), limitSectors: 10 }), 'ENOENT');
  });

  it('EEXIST: the storage file is never overwritten; device names are unique', async () => {
    const existing = path.join(dir, 'precious');
    fs.writeFileSync(existing, 'do not touch');
    await expectErrno(engine.snapshotCreate({ diffStoragePath: existing, limitSectors: 100 }), 'EEXIST');
    expect(fs.readFileSync(existing, 'utf8')).toBe('do not touch');
    await expectErrno(engine.addDevice({ path: makeImage(dir, 'c.img', MiB), name: 'a' }), 'EEXIST');
  });

  it('EALREADY: attach twice, take twice, add twice, add after take', async () => {
    await engine.attach('a');
    await expectErrno(engine.attach('a'), 'EALREADY');
    const id = await snapshot(['a']);
    await expectErrno(engine.snapshotAdd(id, 'a'), 'EALREADY');
    await engine.snapshotTake(id);
    await expectErrno(engine.snapshotTake(id), 'EALREADY');
    await expectErrno(engine.snapshotAdd(id, 'b'), 'EALREADY');
    expect(engine.listDevices().find((d) => d.name === 'b')).toMatchObject({ attached: false, snapshotId: null });
  });

  it('ENODEV: take of a snapshot without devices', async () => {
    const id = await snapshot([]);
    await expectErrno(engine.snapshotTake(id), 'ENODEV');
  });

  it('EINVAL: bad arguments; misaligned and out-of-range I/O with nothing written', async () => {
    await expectErrno(engine.snapshotCreate({ diffStoragePath: path.join(dir, 'x'), limitSectors: -1 }), 'EINVAL');
    await expectErrno(engine.snapshotCreate({ diffStoragePath: path.join(dir, 'x'), limitSectors: 1.5 }), 'EINVAL');
    expect(fs.existsSync(path.join(dir, 'x'))).toBe(false);
    await expectErrno(engine.addDevice({ path: makeImage(dir, 'odd.img', 1000) }), 'EINVAL');
    await expectErrno(engine.addDevice({ path: makeImage(dir, 'e.img', 4096), name: 'blksnap-image9' }), 'EINVAL');
    await expectErrno(engine.addDevice({ path: dir }), 'EINVAL');
    await engine.attach('a');
    await expectErrno(engine.cbtDirty('a', [{ offset: -1, count: 1 }]), 'EINVAL');
    await expectErrno(engine.cbtDirty('a', [{ offset: 2048, count: 1 }]), 'EINVAL'); // past the end
    await expectErrno(engine.cbtMap('a', 0.5, 1), 'EINVAL');
    await expectErrno(engine.cbtMap('a', 100_000, 1), 'ENODATA');
    const id = await snapshot(['a']);
    await expectErrno(engine.snapshotWaitEvent(id, -1), 'EINVAL');
    await engine.snapshotTake(id);
    const before = fs.readFileSync(path.join(dir, 'a.img'));
    const dev = engine.device('a');
    await expectErrno(dev.write(100, Buffer.alloc(512, 1)), 'EINVAL');
    await expectErrno(dev.write(0, Buffer.alloc(100, 1)), 'EINVAL');
    await expectErrno(dev.write(MiB - 512, Buffer.alloc(1024, 1)), 'EINVAL');
    await expectErrno(dev.writeZeroes(MiB, 512), 'EINVAL');
    await expectErrno(dev.discard(1, 512), 'EINVAL');
    await expectErrno(dev.read(0, 100), 'EINVAL');
    const img = engine.image((await engine.snapshotInfo('a')).image);
    await expectErrno(img.write(MiB, Buffer.alloc(512, 1)), 'EINVAL');
    await expectErrno(img.read(-512, 512), 'EINVAL');
    expect(fs.readFileSync(path.join(dir, 'a.img')).equals(before)).toBe(true);
    expect((await engine.storageInfo(id)).usedSectors).toBe(0);
    const info = await engine.cbtInfo('a');
    expect([...(await engine.cbtMap('a', 0, info.blockCount))].every((x) => x === 0)).toBe(true);
  });
});

describe('EmbeddedEngine: CBT', () => {
  it('cbtinfo reports the previous change number and the map is read in portions', async () => {
    await engine.attach('a');
    const info0 = await engine.cbtInfo('a');
    expect(info0).toMatchObject({ deviceCapacity: MiB, blockSize: 4096, blockCount: 256, changesNumber: 0 });
    await engine.device('a').write(3 * 4096, Buffer.alloc(8192, 1)); // blocks 3 and 4
    // Before any take the read table is still empty.
    expect([...(await engine.cbtMap('a', 0, 256))].every((x) => x === 0)).toBe(true);
    const id = await snapshot(['a']);
    await engine.snapshotTake(id);
    const info1 = await engine.cbtInfo('a');
    expect(info1.changesNumber).toBe(1);
    expect(info1.generationId).toBe(info0.generationId);
    const part = await engine.cbtMap('a', 2, 4);
    expect([...part]).toEqual([0, 1, 1, 0]);
    expect((await engine.cbtMap('a', 250, 100)).length).toBe(6);
    expect((await engine.cbtMap('a', 256, 10)).length).toBe(0);
    // Writes after take go to the write table only: visible after the next take.
    await engine.device('a').write(0, Buffer.alloc(512, 1));
    expect((await engine.cbtMap('a', 0, 1))[0]).toBe(0);
    await engine.cbtDirty('a', [{ offset: 8 * 10, count: 1 }]);
    expect((await engine.cbtMap('a', 10, 1))[0]).toBe(1);
    await engine.snapshotDestroy(id);
    const id2 = await snapshot(['a'], 1 << 20, 'diff2');
    await engine.snapshotTake(id2);
    expect((await engine.cbtInfo('a')).changesNumber).toBe(2);
    expect([...(await engine.cbtMap('a', 0, 5))]).toEqual([2, 0, 0, 1, 1]);
    expect((await engine.cbtMap('a', 10, 1))[0]).toBe(2);
  });

  it('cbtMapActive (engine extension) reads the write table: writes after take show the active number at once', async () => {
    await engine.attach('a');
    await engine.device('a').write(3 * 4096, Buffer.alloc(4096, 1)); // block 3, before any take
    // Before any take: the active number is 1 and the write table has it already.
    expect([...(await engine.cbtMapActive('a', 2, 3))]).toEqual([0, 1, 0]);
    expect([...(await engine.cbtMap('a', 2, 3))]).toEqual([0, 0, 0]);
    const id = await snapshot(['a']);
    await engine.snapshotTake(id); // previous 1, active 2
    await engine.device('a').write(20 * 4096, Buffer.alloc(8192, 2)); // blocks 20, 21
    await engine.device('a').write(3 * 4096, Buffer.alloc(512, 2)); // block 3 again
    const active = await engine.cbtMapActive('a', 0, 256);
    expect(active.length).toBe(256);
    expect([active[3], active[20], active[21], active[22]]).toEqual([2, 2, 2, 0]);
    // The read (snapshot) table still shows the state at the take.
    const snap = await engine.cbtMap('a', 0, 256);
    expect([snap[3], snap[20], snap[21]]).toEqual([1, 0, 0]);
    // cbtdirty marks both tables: active number in the write table, previous in the read table.
    await engine.cbtDirty('a', [{ offset: 8 * 30, count: 1 }]);
    expect((await engine.cbtMapActive('a', 30, 1))[0]).toBe(2);
    expect((await engine.cbtMap('a', 30, 1))[0]).toBe(1);
    // Same portion semantics as cbtMap.
    expect((await engine.cbtMapActive('a', 250, 100)).length).toBe(6);
    expect((await engine.cbtMapActive('a', 256, 10)).length).toBe(0);
    await expectErrno(engine.cbtMapActive('a', 257, 1), 'ENODATA');
    await expectErrno(engine.cbtMapActive('a', 0.5, 1), 'EINVAL');
    await expectErrno(engine.cbtMapActive('a', 0, -1), 'EINVAL');
    await expectErrno(engine.cbtMapActive('b', 0, 1), 'ENOENT');
    // The returned bytes are a copy, not the live table.
    active[3] = 99;
    expect((await engine.cbtMapActive('a', 3, 1))[0]).toBe(2);
    await engine.snapshotDestroy(id);
  });

  it('detach drops the map; attach starts a new generation', async () => {
    await engine.attach('a');
    const g1 = (await engine.cbtInfo('a')).generationId;
    await engine.detach('a');
    await engine.attach('a');
    const g2 = (await engine.cbtInfo('a')).generationId;
    expect(g2).not.toBe(g1);
    expect(g2).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('wraps at 256: numbers restart at 1 with a new generation id (cbt_map_switch)', async () => {
    await engine.attach('a');
    const info0 = await engine.cbtInfo('a');
    const gen0 = info0.generationId;
    let mapBeforeWrap: Uint8Array | null = null;
    for (let take = 1; take <= 255; take++) {
      await engine.device('a').write((take % 256) * 4096, Buffer.alloc(512, take & 0xff));
      const id = await snapshot(['a'], 1 << 20, `w${take}`);
      await engine.snapshotTake(id);
      await engine.snapshotDestroy(id);
      const info = await engine.cbtInfo('a');
      expect(info.changesNumber).toBe(take);
      if (take < 255) {
        expect(info.generationId).toBe(gen0);
        const map = await engine.cbtMap('a', 0, 256);
        expect(map[take % 256]).toBe(take); // the block written before this take
        if (take === 254) mapBeforeWrap = map;
      } else {
        // The 255th take: the active number would become 256, so it restarts at 1,
        // the write table is cleared and a new generation begins; the read table is
        // left as it was at the previous take, as the module does.
        expect(info.generationId).not.toBe(gen0);
        expect([...(await engine.cbtMap('a', 0, 256))]).toEqual([...mapBeforeWrap!]);
      }
    }
    const gen1 = (await engine.cbtInfo('a')).generationId;
    await engine.device('a').write(7 * 4096, Buffer.alloc(512, 1));
    const id = await snapshot(['a'], 1 << 20, 'after');
    await engine.snapshotTake(id);
    const info = await engine.cbtInfo('a');
    expect(info.changesNumber).toBe(1);
    expect(info.generationId).toBe(gen1);
    const map = await engine.cbtMap('a', 0, 256);
    expect(map[7]).toBe(1);
    expect([...map].filter((x) => x !== 0)).toEqual([1]); // only what changed since the wrap
  });
});
