/** Shared set-up for the engine/core tests: temp dirs, image files, errno checks. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'vitest';
import { isBlksnapError } from '../../../engine/abi/errno.js';
import type { ErrnoName } from '../../../engine/abi/errno.js';
import type { ModuleParams } from '../../../engine/core/index.js';

/** Small parameters: 4 KiB chunks and tracking blocks, 16-sector storage portions. */
export const SMALL_PARAMS: Partial<ModuleParams> = {
  chunkMinimumShift: 12,
  trackingBlockMinimumShift: 12,
  diffStorageMinimum: 16,
  chunkMaximumInQueue: 0,
};

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `engine-core-${prefix}-`));
}

/** An image file of `bytes` filled with `fill`. */
export function makeImage(dir: string, name: string, bytes: number, fill = 0): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, Buffer.alloc(bytes, fill));
  return p;
}

export async function expectErrno(p: Promise<unknown> | (() => unknown), errno: ErrnoName): Promise<void> {
  let err: unknown = null;
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${errno}`).not.toBeNull();
  expect(isBlksnapError(err) ? err.errno : err).toBe(errno);
}
