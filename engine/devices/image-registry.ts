/**
 * The image-backed devices of the embedded engine: sparse image files it creates
 * and existing images (regular files or block devices) it is told about, by name.
 * Persisted as JSON in a state directory (written to a temp file and renamed, mode
 * 0600). Unregistering keeps the file unless asked to delete it.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { BlksnapError, isBlksnapError, isErrnoName } from '../abi/errno.js';
import { SECTOR_SIZE } from '../abi/types.js';
import { splitDevT } from '../abi/dev-t.js';
import { parseSize } from './size.js';

export const IMAGE_NAME_MAX = 64;
/** The engine's device-name rule (engine/core addDevice): an alphanumeric first character. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Names of snapshot images (BLKSNAP_IMAGE_NAME); image devices may not use them. */
const RESERVED_PREFIX = 'blksnap-image';
export const REGISTRY_FILE = 'images.json';
const FORMAT_VERSION = 1;

export interface ImageEntry {
  name: string;
  /** Absolute path of the image file or block device. */
  path: string;
  /** Capacity in bytes (a multiple of 512) when registered or created. */
  size: number;
  kind: 'file' | 'block';
  /** True when the registry created the file (create()). */
  created: boolean;
  /** ISO time of registration. */
  registeredAt: string;
}

/**
 * EINVAL unless `name` is 1..64 of [A-Za-z0-9._-] starting with a letter or digit,
 * and does not start with "blksnap-image" (reserved for snapshot images).
 */
export function validateImageName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new BlksnapError(
      'EINVAL',
      `invalid image name "${name}": use 1-${IMAGE_NAME_MAX} of A-Z a-z 0-9 . _ -, starting with a letter or digit`,
    );
  }
  if (name.startsWith(RESERVED_PREFIX)) {
    throw new BlksnapError('EINVAL', `invalid image name "${name}": names starting with "${RESERVED_PREFIX}" are reserved for snapshot images`);
  }
}

/** A valid name from a file name: extension dropped, other characters replaced by "_". */
export function nameFromPath(path: string): string {
  const base = basename(path);
  const stem = extname(base) && base !== extname(base) ? base.slice(0, -extname(base).length) : base;
  let name = stem.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]+/, '');
  if (name === '') name = 'image';
  if (name.startsWith(RESERVED_PREFIX)) name = `image-${name}`;
  return name.slice(0, IMAGE_NAME_MAX);
}

function uniqueName(base: string, taken: Set<string>): string {
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) {
    const suffix = `-${i}`;
    const candidate = `${base.slice(0, IMAGE_NAME_MAX - suffix.length)}${suffix}`;
    if (!taken.has(candidate)) return candidate;
  }
}

const REASONS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EEXIST: 'the file already exists (it is never overwritten)',
  ENOTDIR: 'a component of the path is not a directory',
  EISDIR: 'it is a directory',
  ELOOP: 'it is a symbolic link (not followed)',
  ENOSPC: 'no space left on the file system',
  EROFS: 'the file system is read-only',
  EFBIG: 'the file system does not allow a file that large',
};

function fsErr(err: unknown, what: string): BlksnapError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (isErrnoName(code)) return new BlksnapError(code, `${what}: ${REASONS[code] ?? (err instanceof Error ? err.message : String(err))}`);
  return new BlksnapError('EIO', `${what}: ${err instanceof Error ? err.message : String(err)}`);
}

/** Capacity of a block device from sysfs, by its device number. */
async function blockDeviceSize(rdev: number): Promise<number> {
  const { major, minor } = splitDevT(rdev);
  const text = await readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
  return Number(text.trim()) * SECTOR_SIZE;
}

interface StateFile {
  version: number;
  images: ImageEntry[];
}

export interface CreateImageOptions {
  /** Default: derived from the file name (made unique). */
  name?: string;
}

export class ImageRegistry {
  readonly stateFile: string;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly stateDir: string) {
    this.stateFile = join(stateDir, REGISTRY_FILE);
  }

  /** Runs operations one at a time (read-modify-write of the state file). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async load(): Promise<ImageEntry[]> {
    let text: string;
    try {
      text = await readFile(this.stateFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw fsErr(err, `cannot read ${this.stateFile}`);
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      throw new BlksnapError('EIO', `${this.stateFile} is not valid JSON`);
    }
    const images = (data as Partial<StateFile> | null)?.images;
    if (!Array.isArray(images)) throw new BlksnapError('EIO', `${this.stateFile} has no image list`);
    return images as ImageEntry[];
  }

  private async save(images: ImageEntry[]): Promise<void> {
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    const tmp = `${this.stateFile}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const body = `${JSON.stringify({ version: FORMAT_VERSION, images } satisfies StateFile, null, 2)}\n`;
    try {
      const handle = await open(tmp, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o600);
      try {
        await handle.writeFile(body);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await chmod(tmp, 0o600);
      await rename(tmp, this.stateFile);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw isBlksnapError(err) ? err : fsErr(err, `cannot write ${this.stateFile}`);
    }
  }

  async list(): Promise<ImageEntry[]> {
    return this.serial(() => this.load());
  }

  /** The entry of `name`; ENOENT when not registered. */
  async get(name: string): Promise<ImageEntry> {
    const entry = (await this.list()).find((e) => e.name === name);
    if (!entry) throw new BlksnapError('ENOENT', `no image named "${name}"`);
    return entry;
  }

  private pickName(images: ImageEntry[], path: string, requested: string | undefined): string {
    const taken = new Set(images.map((e) => e.name));
    if (requested !== undefined) {
      validateImageName(requested);
      if (taken.has(requested)) throw new BlksnapError('EEXIST', `an image named "${requested}" is already registered`);
      return requested;
    }
    return uniqueName(nameFromPath(path), taken);
  }

  private checkPathFree(images: ImageEntry[], path: string): void {
    const other = images.find((e) => e.path === path);
    if (other) throw new BlksnapError('EEXIST', `${path} is already registered as "${other.name}"`);
  }

  /**
   * Creates a sparse image of `size` (bytes or "64M"; a positive multiple of 512)
   * and registers it. An existing file is never overwritten (EEXIST).
   */
  async create(path: string, size: number | string, options: CreateImageOptions = {}): Promise<ImageEntry> {
    const bytes = parseSize(size);
    if (bytes <= 0 || bytes % SECTOR_SIZE !== 0) {
      throw new BlksnapError('EINVAL', `image size must be a positive multiple of ${SECTOR_SIZE} bytes, got ${bytes}`);
    }
    const abs = resolve(path);
    return this.serial(async () => {
      const images = await this.load();
      this.checkPathFree(images, abs);
      const name = this.pickName(images, abs, options.name);
      let handle;
      try {
        handle = await open(abs, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_RDWR | fsConstants.O_NOFOLLOW, 0o600);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new BlksnapError('ENOENT', `cannot create ${abs}: the directory ${dirname(abs)} does not exist`);
        }
        throw fsErr(err, `cannot create ${abs}`);
      }
      try {
        await handle.truncate(bytes);
      } catch (err) {
        await handle.close();
        await unlink(abs).catch(() => undefined);
        throw fsErr(err, `cannot size ${abs} to ${bytes} bytes`);
      }
      await handle.close();
      const entry: ImageEntry = { name, path: abs, size: bytes, kind: 'file', created: true, registeredAt: new Date().toISOString() };
      try {
        await this.save([...images, entry]);
      } catch (err) {
        await unlink(abs).catch(() => undefined);
        throw err;
      }
      return entry;
    });
  }

  /**
   * Registers an image file its caller has just created (the helper, with the user's
   * rights: engine/helper/caller-fs.ts) and sized to `size` bytes, as a lab disk.
   */
  async registerCreated(path: string, size: number, options: CreateImageOptions = {}): Promise<ImageEntry> {
    if (!Number.isSafeInteger(size) || size <= 0 || size % SECTOR_SIZE !== 0) {
      throw new BlksnapError('EINVAL', `image size must be a positive multiple of ${SECTOR_SIZE} bytes, got ${size}`);
    }
    const abs = resolve(path);
    return this.serial(async () => {
      const images = await this.load();
      this.checkPathFree(images, abs);
      const name = this.pickName(images, abs, options.name);
      const entry: ImageEntry = { name, path: abs, size, kind: 'file', created: true, registeredAt: new Date().toISOString() };
      await this.save([...images, entry]);
      return entry;
    });
  }

  /** Registers an existing image: a regular file or block device whose size is a multiple of 512. */
  async register(path: string, options: CreateImageOptions = {}): Promise<ImageEntry> {
    const abs = resolve(path);
    return this.serial(async () => {
      let st;
      try {
        st = await stat(abs);
      } catch (err) {
        throw fsErr(err, `cannot register ${abs}`);
      }
      let kind: ImageEntry['kind'];
      let size: number;
      if (st.isFile()) {
        kind = 'file';
        size = st.size;
      } else if (st.isBlockDevice()) {
        kind = 'block';
        try {
          size = await blockDeviceSize(st.rdev);
        } catch (err) {
          throw fsErr(err, `cannot read the size of ${abs}`);
        }
      } else {
        throw new BlksnapError('EINVAL', `${abs} is neither a regular file nor a block device`);
      }
      if (size <= 0 || size % SECTOR_SIZE !== 0) {
        throw new BlksnapError('EINVAL', `${abs} is ${size} bytes: an image must be a positive multiple of ${SECTOR_SIZE}`);
      }
      const images = await this.load();
      this.checkPathFree(images, abs);
      const name = this.pickName(images, abs, options.name);
      const entry: ImageEntry = { name, path: abs, size, kind, created: false, registeredAt: new Date().toISOString() };
      await this.save([...images, entry]);
      return entry;
    });
  }

  /** Forgets an image; its file is deleted only with deleteFile (never a block device). */
  async unregister(name: string, options: { deleteFile?: boolean } = {}): Promise<ImageEntry> {
    return this.serial(async () => {
      const images = await this.load();
      const entry = images.find((e) => e.name === name);
      if (!entry) throw new BlksnapError('ENOENT', `no image named "${name}"`);
      if (options.deleteFile && entry.kind === 'block') {
        throw new BlksnapError('EINVAL', `"${name}" is a block device: it cannot be deleted`);
      }
      await this.save(images.filter((e) => e !== entry));
      if (options.deleteFile) {
        await unlink(entry.path).catch((err: unknown) => {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsErr(err, `cannot delete ${entry.path}`);
        });
      }
      return entry;
    });
  }
}
