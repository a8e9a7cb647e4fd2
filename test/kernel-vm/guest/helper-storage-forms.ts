/**
 * The helper's difference-storage forms on the real VAL-7.0 module: each opened by
 * engine/helper/storage-forms.ts (the helper's own code) with a CallerFs for an
 * unprivileged user (uid 1000), so the module gets /proc/self/fd/N of the object the
 * helper checked. What each form must leave behind is checked against the module's
 * documented behaviour (diff_storage.c), never against the driver:
 * - existing file: same inode and size after destroy, its first 2 MiB (the module
 *   writes from sector 4096 on) untouched, the original's old data copied into it;
 * - directory: nothing ever named in it; the module's unnamed file takes space on
 *   the file system while held, and gives it back after destroy;
 * - block device: claimed exclusively while held (another O_EXCL open and the
 *   helper's own check both get EBUSY), the original's old data on it, free again
 *   after destroy.
 */
import { equal, ok, rejects } from 'node:assert/strict';
import { chownSync, closeSync, mkdirSync, openSync, readdirSync, statSync, statfsSync, truncateSync, writeFileSync, constants as fsc } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { SnapshotCreateParams } from '../../../engine/abi/types.js';
import { CallerFs } from '../../../engine/helper/caller-fs.js';
import { openStorage } from '../../../engine/helper/storage-forms.js';
import type { StorageForm } from '../../../engine/protocol/schemas.js';
import { MiB, deviceBytes, readRange } from './block-io.js';

/** One storage form's run: how it is opened, and its own checks. */
export interface StorageFormCase {
  name: string;
  /** How much the cycle writes to the original after the take (1 MiB when not given). */
  writeBytes?: number;
  open(limitSectors: number): Promise<SnapshotCreateParams>;
  /** After the write, while the module holds the storage. */
  whileHeld?(params: SnapshotCreateParams, oldData: Buffer): Promise<unknown>;
  /** After destroy; `oldData` is what the original held where the cycle wrote. */
  afterDestroy(params: SnapshotCreateParams, oldData: Buffer): Promise<unknown>;
}

/** The user the helper works for in the guest (no /etc/passwd there: gid = uid). */
const USER = { uid: 1000, gid: 1000, groups: [1000] };
const PATTERN = 0x5a;
/** diff_storage.c: the module starts writing at sector 4096 (`filled = 4096`). */
const UNTOUCHED_HEAD = 2 * MiB;

const errnoIs = (name: string, message?: RegExp) => (err: unknown) =>
  (err as { errno?: unknown }).errno === name && (message === undefined || message.test((err as Error).message));

/** The storage opened the way the helper opens it, as the params the helper hands the driver. */
export async function helperStorage(form: StorageForm, path: string, limitSectors: number): Promise<SnapshotCreateParams> {
  const storage = await openStorage(new CallerFs(USER), form, path, {
    // the VAL-7.0 driver opens storage by path (driver.storageByPath): the module claims a device itself
    holdExclusive: false,
    beforeLink: () => Promise.resolve(),
  });
  return { diffStoragePath: storage.path, limitSectors, diffStorageFd: storage.fd };
}

/** A directory of the user's on the work disk. */
function userDir(work: string, name: string): string {
  const dir = `${work}/user/${name}`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chownSync(`${work}/user`, USER.uid, USER.gid);
  chownSync(dir, USER.uid, USER.gid);
  return dir;
}

/** A user's file of `size` bytes whose first 2 MiB hold PATTERN. */
export function preparedFile(work: string, name: string, size: number): string {
  const path = `${userDir(work, 'files')}/${name}`;
  writeFileSync(path, Buffer.alloc(UNTOUCHED_HEAD, PATTERN), { mode: 0o600 });
  truncateSync(path, size);
  chownSync(path, USER.uid, USER.gid);
  return path;
}

/** Polls `check` for up to 5 s (the module releases its storage from a work queue). */
async function eventually(check: () => boolean): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

function freeBytes(path: string): number {
  const s = statfsSync(path);
  return s.bfree * s.bsize;
}

function exclusiveOpenError(device: string): string | null {
  try {
    closeSync(openSync(device, fsc.O_RDWR | fsc.O_EXCL));
    return null;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

/**
 * The module keeps the last 16 copied chunks (chunk_maximum_in_queue; 256 KiB each,
 * chunk_minimum_shift 18) in memory and stores older ones: 6 MiB written after the
 * take (24 chunks) sends at least the first 8 to the storage.
 */
const STORED_WRITE = 6 * MiB;
const CHUNK = 256 * 1024;

/** Offsets in `bytes` of the chunks of `oldData` found there (by each chunk's first 4 KiB). */
function oldChunksIn(bytes: Buffer, oldData: Buffer): number[] {
  const found: number[] = [];
  for (let at = 0; at < oldData.length; at += CHUNK) {
    const where = bytes.indexOf(oldData.subarray(at, at + 4096));
    if (where >= 0) found.push(where);
  }
  return found;
}

export function helperStorageForms(work: string, spareDevice: string): StorageFormCase[] {
  let existingIno = 0;
  let freeBefore = 0;
  return [
    {
      name: 'existing file (helper, as the user): its size is the capacity, left in place',
      writeBytes: STORED_WRITE,
      open: async (limitSectors) => {
        const path = preparedFile(work, 'diff-existing', limitSectors * 512);
        existingIno = statSync(path).ino;
        return helperStorage('existing-file', path, limitSectors);
      },
      afterDestroy: async (params, oldData) => {
        const path = params.diffStoragePath;
        const st = statSync(path);
        equal(st.ino, existingIno, 'the same file is still there');
        equal(st.size, params.limitSectors * 512, 'not truncated, not grown (size = limit: no fallocate)');
        equal(st.uid, USER.uid, 'still the user\'s');
        const bytes = await readFile(path);
        ok(bytes.subarray(0, UNTOUCHED_HEAD).every((b) => b === PATTERN), 'the first 2 MiB are untouched');
        const found = oldChunksIn(bytes, oldData);
        ok(found.length >= 8 && found.every((at) => at >= UNTOUCHED_HEAD), `the module stored the original's old chunks in this file (${found.length} found)`);
        return { size: st.size, oldChunksStored: found.length };
      },
    },
    {
      name: 'directory (helper, as the user): an unnamed file in it, nothing left after destroy',
      open: async (limitSectors) => {
        const dir = userDir(work, 'diffdir');
        freeBefore = freeBytes(dir);
        return helperStorage('directory', dir, limitSectors);
      },
      whileHeld: async (params) => {
        const dir = params.diffStoragePath;
        equal(readdirSync(dir).length, 0, 'nothing is named in the directory');
        const used = freeBefore - freeBytes(dir);
        // diff_storage_set: an empty file is grown with vfs_fallocate to min(limit, 1 GiB) at once
        ok(used >= params.limitSectors * 512, `the module's file takes the limit on that file system (${used} bytes)`);
        return { usedWhileHeld: used };
      },
      afterDestroy: async (params) => {
        const dir = params.diffStoragePath;
        equal(readdirSync(dir).length, 0, 'nothing is left in the directory');
        ok(await eventually(() => freeBefore - freeBytes(dir) < MiB), `its space is given back (${freeBefore - freeBytes(dir)} bytes still used)`);
        return { stillUsed: freeBefore - freeBytes(dir) };
      },
    },
    {
      name: 'block device (helper): claimed exclusively by the module while held',
      writeBytes: STORED_WRITE,
      open: async (limitSectors) => {
        equal(exclusiveOpenError(spareDevice), null, `${spareDevice} is free before`);
        return helperStorage('block-device', spareDevice, limitSectors);
      },
      whileHeld: async () => {
        equal(exclusiveOpenError(spareDevice), 'EBUSY', 'another exclusive open gets EBUSY');
        await rejects(helperStorage('block-device', spareDevice, 8), errnoIs('EBUSY', /opened exclusively/));
        return { exclusiveOpen: 'EBUSY' };
      },
      afterDestroy: async (params, oldData) => {
        const size = await deviceBytes(spareDevice.replace('/dev/', ''));
        const found = oldChunksIn(await readRange(spareDevice, 0, size), oldData);
        ok(found.length >= 8 && found.every((at) => at >= UNTOUCHED_HEAD), `the module stored the original's old chunks on ${spareDevice} (${found.length} found)`);
        ok(await eventually(() => exclusiveOpenError(spareDevice) === null), `${spareDevice} is free again after destroy`);
        return { oldChunksStored: found.length, storage: params.diffStoragePath };
      },
    },
  ];
}
