/**
 * Restore a backup point to a new image file (raw, sparse; or a flattened qcow2).
 * The file is written under a ".partial-" name and renamed only when its content
 * has the SHA-256 known for the point (the manifest's, or the one its first verify
 * computed; without either, the block hashes recorded at take).
 * Block-device targets and their safety checks are not handled here.
 */
import { rename, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BlksnapError } from '../abi/errno.js';
import type { ImageWriter } from './image-writer.js';
import { fsyncPath, partialName } from './point-files.js';
import { checkCancelled } from './progress.js';
import { createSha256 } from './sha256-process.js';
import type { JobOptions } from './progress.js';
import { openImage } from './qcow2-reader.js';
import { Qcow2Writer } from './qcow2-writer.js';
import { RawWriter } from './raw-writer.js';
import { blockProblems, findPoint, knownSha256, scanImage } from './verify.js';

export interface RestoreOptions extends JobOptions {
  /** raw (default, sparse) or a standalone qcow2. */
  format?: 'raw' | 'qcow2';
}

export interface RestoreResult {
  target: string;
  bytes: number;
  sha256: string;
}

export async function restorePoint(dir: string, id: string, target: string, opts: RestoreOptions = {}): Promise<RestoreResult> {
  checkCancelled(opts.signal, 'restore');
  const { point } = await findPoint(dir, id);
  if (await stat(target).then(() => true, () => false)) {
    throw new BlksnapError('EEXIST', `the restore target ${target} exists; restore writes a new image file`);
  }
  const tmp = join(dirname(target), partialName(basename(target)));
  const image = await openImage(join(dir, point.image.file), point.image.format);
  let writer: ImageWriter | null = null;
  const sha = createSha256();
  try {
    const size = image.virtualSize;
    writer = opts.format === 'qcow2' ? await Qcow2Writer.create({ path: tmp, virtualSize: size }) : await RawWriter.create({ path: tmp, virtualSize: size });
    const w = writer;
    const expected = await knownSha256(dir, point);
    const problems: string[] = [];
    const bytes = await scanImage(image, point.cbt.blockSize, 'restore', opts, async (offset, data) => {
      if (expected === null && problems.length === 0) problems.push(...blockProblems(point, offset, data));
      await w.write(offset, data);
      await sha.update(data, true);
    });
    const digest = await sha.digest();
    if (expected !== null && digest !== expected) problems.push(`its SHA-256 is ${digest}, the image at take had ${expected}`);
    if (problems.length > 0) throw new BlksnapError('EIO', `the restored image does not match the backup point ${id}: ${problems[0]}`);
    checkCancelled(opts.signal, 'restore');
    await writer.finish();
    writer = null;
    await rename(tmp, target);
    await fsyncPath(dirname(target), true);
    return { target, bytes, sha256: digest };
  } catch (err) {
    await writer?.abort();
    throw err;
  } finally {
    await sha.close();
    await image.close();
  }
}
