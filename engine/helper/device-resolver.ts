/**
 * Turns a client's device reference into the driver's. The helper accepts only
 * block devices (kernel driver) or registered images, i.e. engine devices (embedded
 * engine, by name or by the path of the image file).
 */
import { realpath, stat } from 'node:fs/promises';
import { BlksnapError } from '../abi/errno.js';
import type { EmbeddedEngineApi } from '../core/embedded-api.js';
import { errnoOf } from './fs-errors.js';

async function canonical(path: string): Promise<string | null> {
  try {
    return await realpath(path);
  } catch {
    return null;
  }
}

export async function resolveEngineDevice(engine: EmbeddedEngineApi, ref: string): Promise<string> {
  const devices = engine.listDevices();
  const byName = devices.find((d) => d.name === ref);
  if (byName) return byName.name;
  if (ref.startsWith('/')) {
    const real = await canonical(ref);
    if (real !== null) {
      for (const d of devices) {
        if (d.path === ref || (await canonical(d.path)) === real) return d.name;
      }
    }
    throw new BlksnapError(
      'ENOENT',
      `${ref} is not a registered image (register it first: blksnap-manager image add --path ${ref})`,
    );
  }
  throw new BlksnapError('ENOENT', `no device or registered image named "${ref}"`);
}

export async function resolveBlockDevice(ref: string): Promise<string> {
  const path = ref.startsWith('/') ? ref : `/dev/${ref}`;
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') throw new BlksnapError('ENOENT', `no such device: ${path}`);
    throw new BlksnapError('EACCES', `cannot resolve ${path}: ${(err as Error).message}`);
  }
  const st = await stat(real);
  if (!st.isBlockDevice()) throw new BlksnapError('ENODEV', `${path} is not a block device`);
  return real;
}
