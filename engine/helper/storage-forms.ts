/**
 * The difference storage in the forms the blksnap module accepts, opened with the
 * rights of the user the helper works for (caller-fs.ts), and handed to the driver
 * as one open descriptor of the very object that was checked:
 *
 * - `new-file`: created unnamed, recorded in the ledger, then named (createFile);
 *   the only form the helper ever removes (at destroy);
 * - `existing-file`: a regular file the user may read and write; its size is the
 *   initial capacity; never truncated, never removed; refused while a loop device
 *   reads it or another program (qemu, the engine) holds it for writing;
 * - `directory`: an unnamed temporary file in it (O_TMPFILE | O_EXCL, never named),
 *   created as the user: it vanishes with the snapshot, even after a crash;
 * - `block-device`: a block device under /dev, refused while it (or a partition, or
 *   its whole disk) is mounted, used as swap, held by device-mapper/md or opened
 *   exclusively by another program, with the reason; the embedded engine keeps it
 *   open exclusively (O_EXCL), a kernel module opens it exclusively itself.
 *
 * A path-taking module (VAL-7.0, lk6.15) gets `/proc/self/fd/N` of this descriptor
 * (engine/kernel/kernel-driver.ts), so nothing swapped in under the path after the
 * check can be what the module opens.
 */
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { BlksnapError } from '../abi/errno.js';
import { lockImage } from '../core/image-lock.js';
import { splitDevT } from '../abi/dev-t.js';
import { loopDevicesOver, whatHolds } from '../devices/device-holders.js';
import type { StorageForm } from '../protocol/schemas.js';
import type { CallerFs, CreatedFile, OpenedFile, PendingFile } from './caller-fs.js';

const WHAT = 'difference storage';

export interface OpenedStorage {
  form: StorageForm;
  /** The descriptor for the driver, which takes it over (closes it, also on failure). */
  fd: number;
  /** The path as given (the file, the directory or the device). */
  path: string;
  /** The file the helper created (`new-file` only): recorded, and removed at destroy. */
  created: CreatedFile | null;
}

export interface OpenStorageOptions {
  /**
   * Who opens a block device exclusively: the helper, for the embedded engine, which
   * then holds it (`true`), or a kernel module, which claims it itself (`false`: the
   * helper only checks that an exclusive open succeeds, then hands over a plain one).
   */
  holdExclusive: boolean;
  /** Runs before a new file gets its name: record it there (storage-ledger.ts). */
  beforeLink: (pending: PendingFile) => Promise<void>;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** Opens (or creates) the storage of form `form` at `path` with the caller's rights. */
export async function openStorage(files: CallerFs, form: StorageForm, path: string, options: OpenStorageOptions): Promise<OpenedStorage> {
  switch (form) {
    case 'new-file': {
      const created = await files.createFile(path, WHAT, options.beforeLink, { keepDir: true });
      return { form, fd: created.fd, path: created.path, created };
    }
    case 'directory': {
      const opened = files.createUnnamed(path, WHAT);
      return { form, fd: opened.fd, path: opened.path, created: null };
    }
    case 'existing-file':
      return { form, fd: openExistingFile(files, path), path, created: null };
    case 'block-device':
      return { form, fd: await openBlockDevice(files, path, options.holdExclusive), path, created: null };
  }
}

/** What openExisting found at a path, or why not, in the words of the form asked for. */
function openAs(files: CallerFs, path: string, form: StorageForm): OpenedFile {
  try {
    return files.openExisting(path, WHAT, { write: true });
  } catch (err) {
    if (err instanceof BlksnapError && err.errno === 'EISDIR') {
      throw new BlksnapError('EISDIR', `${WHAT}: ${path} is a directory, not a ${form === 'block-device' ? 'block device' : 'regular file'} (choose the directory form for an unnamed file in it)`);
    }
    if (err instanceof BlksnapError && err.errno === 'EINVAL' && /neither a regular file nor a block device/.test(err.message)) {
      throw new BlksnapError('EINVAL', `${WHAT}: ${path} is not a ${form === 'block-device' ? 'block device' : 'regular file'}`);
    }
    throw err;
  }
}

function openExistingFile(files: CallerFs, path: string): number {
  const opened = openAs(files, path, 'existing-file');
  try {
    if (opened.isBlockDevice) {
      throw new BlksnapError('EINVAL', `${WHAT}: ${path} is a block device, not a regular file (choose the block-device form)`);
    }
    const loops = loopDevicesOver(opened.dev, opened.ino);
    if (loops.length > 0) {
      throw new BlksnapError('EBUSY', `${WHAT}: ${path} is in use: it is the backing file of ${loops.map((l) => `/dev/${l}`).join(', ')}`);
    }
    // qemu's image locks, as a fronted image carries them: a file another program writes is refused
    lockImage(opened.fd, path);
    return opened.fd;
  } catch (err) {
    closeQuietly(opened.fd);
    throw err;
  }
}

async function openBlockDevice(files: CallerFs, path: string, holdExclusive: boolean): Promise<number> {
  if (!path.startsWith('/dev/')) throw new BlksnapError('EINVAL', `${WHAT}: ${path} is not a block device (block devices are under /dev)`);
  const opened = openAs(files, path, 'block-device');
  let exclusive: number;
  try {
    if (!opened.isBlockDevice) throw new BlksnapError('EINVAL', `${WHAT}: ${path} is not a block device`);
    const { major, minor } = splitDevT(opened.rdev);
    const uses = await whatHolds(major, minor);
    if (uses.length > 0) throw new BlksnapError('EBUSY', `${WHAT}: ${path} is in use: ${uses.join('; ')}; only a device nothing else uses can hold it`);
    exclusive = claim(opened.fd, path);
  } catch (err) {
    closeQuietly(opened.fd);
    throw err;
  }
  if (holdExclusive) {
    closeQuietly(opened.fd);
    return exclusive;
  }
  closeQuietly(exclusive);
  return opened.fd;
}

/** The same inode opened again with O_EXCL: the kernel then refuses mount, swapon, mkfs (EBUSY while held elsewhere). */
function claim(fd: number, path: string): number {
  try {
    return openSync(`/proc/self/fd/${fd}`, fsConstants.O_RDWR | fsConstants.O_EXCL);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'EBUSY') throw new BlksnapError('EBUSY', `${WHAT}: ${path} is in use: it is opened exclusively by another program`);
    throw new BlksnapError('EIO', `${WHAT}: cannot open ${path} exclusively: ${code ?? String(err)}`);
  }
}
