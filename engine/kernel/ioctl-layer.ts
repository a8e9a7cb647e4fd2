/**
 * The system-call seam of the kernel driver: open/close a device, issue an ioctl,
 * and allocate memory whose address can be stored in a struct's pointer field
 * (blksnap_cbtmap.buffer, blksnap_cbtdirty.dirty_sectors, blksnap_snapshot_collect.ids,
 * blkfilter_ctl.opt). The real layer (koffi-ioctl-layer.ts) hands out native memory
 * and real addresses; the tests' fake (test/engine/kernel/fake-ioctl-layer.ts) hands out synthetic addresses it
 * resolves itself, so the driver code is the same for both.
 */
import { constants as fsConstants } from 'node:fs';
import { BlksnapError, errnoName, isErrnoName } from '../abi/errno.js';
import { ioctlName } from './ioctl-numbers.js';

/** Memory a pointer field can point to: `buffer` is a view of the bytes at `address`. */
export interface NativeMemory {
  readonly buffer: Buffer;
  readonly address: bigint;
}

export interface IoctlLayer {
  /** open(2); rejects with BlksnapError carrying the errno. `mode` applies with O_CREAT. */
  open(path: string, flags: number, mode?: number): Promise<number>;
  close(fd: number): Promise<void>;
  /**
   * ioctl(2) with `arg` as the third argument (its bytes are read and written in
   * place). Resolves with the non-negative return value; rejects with BlksnapError
   * named for errno.
   */
  ioctl(fd: number, request: number, arg: Buffer): Promise<number>;
  /** Zero-filled memory with a stable address, until free(). */
  alloc(size: number): NativeMemory;
  free(mem: NativeMemory): void;
}

/** open(2) flags (Linux values, from node:fs). libuv adds O_CLOEXEC itself. */
export const O_RDONLY = fsConstants.O_RDONLY;
export const O_RDWR = fsConstants.O_RDWR;
export const O_CREAT = fsConstants.O_CREAT;
export const O_EXCL = fsConstants.O_EXCL;
export const O_NOFOLLOW = fsConstants.O_NOFOLLOW;

/** BlksnapError for a failed ioctl, named for its errno (EIO when the number is unknown here). */
export function ioctlError(errno: number, request: number, context = ''): BlksnapError {
  const name = errnoName(errno) ?? 'EIO';
  const where = context ? ` on ${context}` : '';
  const unknown = errnoName(errno) ? '' : ` (errno ${errno})`;
  return new BlksnapError(name, `ioctl ${ioctlName(request)}${where} failed${unknown}`);
}

/** BlksnapError from a Node.js fs error (err.code is the errno name). */
export function fsError(err: unknown, what: string): BlksnapError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (isErrnoName(code)) return new BlksnapError(code, what);
  return new BlksnapError('EIO', `${what}: ${err instanceof Error ? err.message : String(err)}`);
}

/** Runs `fn` with memory from the layer, freeing it afterwards. */
export async function withMemory<T>(layer: IoctlLayer, size: number, fn: (mem: NativeMemory) => Promise<T>): Promise<T> {
  const mem = layer.alloc(size);
  try {
    return await fn(mem);
  } finally {
    layer.free(mem);
  }
}
