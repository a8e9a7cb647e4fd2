import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlksnapError } from '../../../engine/abi/errno.js';
import { ImageRegistry, nameFromPath, validateImageName } from '../../../engine/devices/image-registry.js';
import { canUseLoop, hasCommand } from '../../helpers/env.js';

const MiB = 1024 * 1024;

async function errnoOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as BlksnapError).errno ?? String(err);
  }
  return 'resolved';
}

let dir: string;
let stateDir: string;
let registry: ImageRegistry;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'imgreg-'));
  stateDir = join(dir, 'state', 'nested');
  registry = new ImageRegistry(stateDir);
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('image names', () => {
  it('are validated: [A-Za-z0-9._-], 1..64', () => {
    for (const ok of ['disk1', 'a.b_c-d', 'x'.repeat(64)]) expect(() => validateImageName(ok)).not.toThrow();
    for (const bad of ['', 'a b', 'a/b', 'x'.repeat(65), '..', '.', 'é']) {
      expect(() => validateImageName(bad), bad).toThrow(/EINVAL/);
    }
  });

  it('derive from the file name', () => {
    expect(nameFromPath('/var/lib/images/web server.img')).toBe('web_server');
    expect(nameFromPath('/x/disk.raw')).toBe('disk');
    expect(nameFromPath('/x/.hidden')).toBe('hidden');
    expect(nameFromPath(`/x/${'y'.repeat(80)}.img`)).toBe('y'.repeat(64));
  });

  it('are what the engine accepts: an alphanumeric first character, never the snapshot-image prefix', () => {
    // engine/core/engine.ts addDevice refuses other names, so the registration would be rolled back.
    for (const bad of ['.hidden', '-rf', '_x', 'blksnap-image0', 'blksnap-image_8:16']) {
      expect(() => validateImageName(bad), bad).toThrow(/EINVAL/);
    }
    expect(nameFromPath('/x/blksnap-image0.img')).toBe('image-blksnap-image0');
    for (const path of ['/x/.hidden', '/x/-rf.img', '/x/__.raw', '/x/blksnap-image0.img', `/x/blksnap-image${'9'.repeat(80)}`, '/x/...']) {
      expect(() => validateImageName(nameFromPath(path)), path).not.toThrow();
    }
  });

  it('derived from a reserved or dotted file name still register', async () => {
    const copy = join(dir, 'blksnap-image0.img');
    writeFileSync(copy, Buffer.alloc(4096));
    const hidden = join(dir, '.hidden');
    writeFileSync(hidden, Buffer.alloc(4096));
    expect((await registry.register(copy)).name).toBe('image-blksnap-image0');
    expect((await registry.register(hidden)).name).toBe('hidden');
  });
});

describe('ImageRegistry', () => {
  it('creates a sparse image (size with suffix), persists it with mode 0600', async () => {
    const path = join(dir, 'disk1.img');
    const entry = await registry.create(path, '64M');
    expect(entry).toMatchObject({ name: 'disk1', path, size: 64 * MiB, kind: 'file', created: true });
    const st = statSync(path);
    expect(st.size).toBe(64 * MiB);
    expect(st.blocks * 512).toBeLessThan(MiB); // sparse
    expect(st.mode & 0o777).toBe(0o600);
    const stateFile = join(stateDir, 'images.json');
    expect(statSync(stateFile).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(stateFile, 'utf8'))).toMatchObject({ version: 1, images: [{ name: 'disk1', path }] });
    expect(readdirSync(stateDir)).toEqual(['images.json']); // no temp files left
    // A new registry on the same directory sees it.
    expect(await new ImageRegistry(stateDir).list()).toEqual([entry]);
  });

  it('never overwrites: an existing file is EEXIST and untouched', async () => {
    const path = join(dir, 'keep.img');
    writeFileSync(path, 'data');
    expect(await errnoOf(registry.create(path, '1M'))).toBe('EEXIST');
    expect(readFileSync(path, 'utf8')).toBe('data');
    const link = join(dir, 'link.img');
    symlinkSync(join(dir, 'nowhere.img'), link);
    expect(await errnoOf(registry.create(link, '1M'))).toBe('EEXIST');
    expect(existsSync(join(dir, 'nowhere.img'))).toBe(false);
    expect(await registry.list()).toEqual([]);
  });

  it('rejects sizes that are not positive multiples of 512, and missing directories', async () => {
    expect(await errnoOf(registry.create(join(dir, 'a.img'), 1000))).toBe('EINVAL');
    expect(await errnoOf(registry.create(join(dir, 'a.img'), '0'))).toBe('EINVAL');
    expect(await errnoOf(registry.create(join(dir, 'a.img'), 'lots'))).toBe('EINVAL');
    expect(await errnoOf(registry.create(join(dir, 'no', 'such', 'a.img'), '1M'))).toBe('ENOENT');
    expect(existsSync(join(dir, 'a.img'))).toBe(false);
  });

  it('names are unique: derived names get a suffix, an explicit taken name is EEXIST', async () => {
    const a = await registry.create(join(dir, 'disk.img'), '1M');
    const b = await registry.create(join(dir, 'disk.raw'), '1M');
    expect([a.name, b.name]).toEqual(['disk', 'disk-2']);
    expect(await errnoOf(registry.create(join(dir, 'other.img'), '1M', { name: 'disk' }))).toBe('EEXIST');
    expect(existsSync(join(dir, 'other.img'))).toBe(false);
    expect(await errnoOf(registry.create(join(dir, 'other.img'), '1M', { name: 'bad name' }))).toBe('EINVAL');
    const c = await registry.create(join(dir, 'other.img'), '1M', { name: 'vm.root' });
    expect(c.name).toBe('vm.root');
    expect((await registry.list()).map((e) => e.name)).toEqual(['disk', 'disk-2', 'vm.root']);
  });

  it('registers existing images; the same path twice is EEXIST', async () => {
    const path = join(dir, 'existing.img');
    writeFileSync(path, Buffer.alloc(8192));
    const entry = await registry.register(path);
    expect(entry).toMatchObject({ name: 'existing', size: 8192, kind: 'file', created: false });
    expect(await errnoOf(registry.register(path, { name: 'again' }))).toBe('EEXIST');
    expect(await errnoOf(registry.create(path, '1M'))).toBe('EEXIST');
  });

  it('register: must exist, be a file or block device, size a multiple of 512', async () => {
    expect(await errnoOf(registry.register(join(dir, 'missing.img')))).toBe('ENOENT');
    expect(await errnoOf(registry.register(dir))).toBe('EINVAL');
    const odd = join(dir, 'odd.img');
    writeFileSync(odd, Buffer.alloc(1000));
    expect(await errnoOf(registry.register(odd))).toBe('EINVAL');
    const empty = join(dir, 'empty.img');
    writeFileSync(empty, '');
    expect(await errnoOf(registry.register(empty))).toBe('EINVAL');
    expect(await errnoOf(registry.register('/dev/null'))).toBe('EINVAL'); // a character device
  });

  it('unregister keeps the file unless asked; unknown names are ENOENT', async () => {
    const a = await registry.create(join(dir, 'a.img'), '1M');
    const b = await registry.create(join(dir, 'b.img'), '1M');
    await registry.unregister('a');
    expect(existsSync(a.path)).toBe(true);
    await registry.unregister('b', { deleteFile: true });
    expect(existsSync(b.path)).toBe(false);
    expect(await registry.list()).toEqual([]);
    expect(await errnoOf(registry.unregister('a'))).toBe('ENOENT');
    expect(await errnoOf(registry.get('a'))).toBe('ENOENT');
  });

  it('concurrent operations on one registry are serialized (no lost update)', async () => {
    const created = await Promise.all(Array.from({ length: 8 }, (_, i) => registry.create(join(dir, `c${i}.img`), '512')));
    expect(new Set(created.map((e) => e.name)).size).toBe(8);
    expect((await registry.list()).length).toBe(8);
  });

  it('a corrupt state file is reported as EIO, not silently replaced', async () => {
    await registry.create(join(dir, 'a.img'), '1M');
    writeFileSync(join(stateDir, 'images.json'), '{broken');
    expect(await errnoOf(registry.list())).toBe('EIO');
    expect(await errnoOf(registry.create(join(dir, 'b.img'), '1M'))).toBe('EIO');
    expect(existsSync(join(dir, 'b.img'))).toBe(false);
  });

  it.skipIf(!canUseLoop || !hasCommand('losetup'))('[root] registers a loop block device with its size', async () => {
    const image = join(dir, 'backing.img');
    writeFileSync(image, '');
    execFileSync('truncate', ['-s', '32M', image]);
    const loop = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
    try {
      const entry = await registry.register(loop);
      expect(entry).toMatchObject({ kind: 'block', size: 32 * MiB, path: loop });
      expect(await errnoOf(registry.unregister(entry.name, { deleteFile: true }))).toBe('EINVAL');
      await registry.unregister(entry.name);
      expect(existsSync(loop)).toBe(true);
    } finally {
      execFileSync('losetup', ['-d', loop]);
    }
  });
});
