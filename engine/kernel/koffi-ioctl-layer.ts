/**
 * The real IoctlLayer: ioctl(2) from libc.so.6 through koffi (prebuilt FFI, no
 * compiled addon), issued asynchronously on koffi's worker thread so a blocking
 * IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT does not stall the event loop; errno is read in
 * the completion callback (koffi keeps the worker's errno for it). open/close are
 * Node's, whose fds are plain kernel fds.
 */
import { close as fsClose, open as fsOpen } from 'node:fs';
import koffi from 'koffi';
import { BlksnapError } from '../abi/errno.js';
import type { IoctlLayer, NativeMemory } from './ioctl-layer.js';
import { fsError, ioctlError } from './ioctl-layer.js';

type IoctlFn = ((fd: number, request: number, arg: unknown) => number) & {
  async: (fd: number, request: number, arg: unknown, cb: (err: unknown, res: number) => void) => void;
};

let cachedIoctl: IoctlFn | undefined;

/** Loads libc and declares `int ioctl(int, unsigned long, void *)` (once per process). */
export function loadIoctl(): IoctlFn {
  if (!cachedIoctl) {
    const libc = koffi.load('libc.so.6');
    cachedIoctl = libc.func('int ioctl(int fd, unsigned long request, void *arg)') as unknown as IoctlFn;
  }
  return cachedIoctl;
}

export class KoffiIoctlLayer implements IoctlLayer {
  private readonly ioctlFn: IoctlFn;
  /** Native allocation behind each Buffer handed out by alloc(). */
  private readonly pointers = new WeakMap<Buffer, unknown>();

  constructor() {
    this.ioctlFn = loadIoctl();
  }

  open(path: string, flags: number, mode = 0o600): Promise<number> {
    return new Promise((resolve, reject) => {
      fsOpen(path, flags, mode, (err, fd) => {
        if (err) reject(fsError(err, `cannot open ${path}`));
        else resolve(fd);
      });
    });
  }

  close(fd: number): Promise<void> {
    return new Promise((resolve, reject) => {
      fsClose(fd, (err) => {
        if (err) reject(fsError(err, `cannot close fd ${fd}`));
        else resolve();
      });
    });
  }

  ioctl(fd: number, request: number, arg: Buffer): Promise<number> {
    // Memory from alloc() is passed as its native pointer; any other Buffer is passed
    // by koffi as a pointer to its bytes for the duration of the call.
    const ptr = this.pointers.get(arg) ?? arg;
    return new Promise((resolve, reject) => {
      this.ioctlFn.async(fd, request, ptr, (err, res) => {
        if (err) {
          reject(new BlksnapError('EIO', `ioctl call failed: ${err instanceof Error ? err.message : String(err)}`));
          return;
        }
        if (res < 0) reject(ioctlError(koffi.errno(), request, `fd ${fd}`));
        else resolve(res);
      });
    });
  }

  alloc(size: number): NativeMemory {
    if (!Number.isInteger(size) || size <= 0) throw new BlksnapError('EINVAL', `cannot allocate ${size} bytes`);
    const ptr: unknown = koffi.alloc('uint8_t', size);
    const buffer = Buffer.from(koffi.view(ptr, size));
    buffer.fill(0);
    this.pointers.set(buffer, ptr);
    return { buffer, address: koffi.address(ptr) };
  }

  free(mem: NativeMemory): void {
    const ptr = this.pointers.get(mem.buffer);
    if (ptr === undefined) return;
    this.pointers.delete(mem.buffer);
    koffi.free(ptr);
  }
}
