/** Reading, writing and hashing block devices in the guest (plain file I/O on the device nodes). */
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';

export const MiB = 1024 * 1024;

export async function readRange(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
      if (bytesRead === 0) throw new Error(`${path}: end of device at ${offset + got}`);
      got += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

/** SHA-256 (hex) of the first `length` bytes of a device, read in 1 MiB pieces. */
export async function sha256Of(path: string, length: number): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const hash = createHash('sha256');
    const buf = Buffer.alloc(MiB);
    for (let at = 0; at < length; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(MiB, length - at), at);
      if (bytesRead === 0) throw new Error(`${path}: end of device at ${at}`);
      hash.update(buf.subarray(0, bytesRead));
      at += bytesRead;
    }
    return hash.digest('hex');
  } finally {
    await fh.close();
  }
}

/** Writes random bytes at `offset`, flushed to the device; returns them. */
export async function writeRandom(path: string, offset: number, length: number): Promise<Buffer> {
  const data = randomBytes(length);
  const fh = await open(path, 'r+');
  try {
    let done = 0;
    while (done < length) {
      const { bytesWritten } = await fh.write(data, done, length - done, offset + done);
      done += bytesWritten;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return data;
}

/** "major:minor" of a block device from sysfs (/sys/class/block/NAME/dev). */
export async function deviceNumber(name: string): Promise<{ major: number; minor: number }> {
  const [major, minor] = (await readFile(`/sys/class/block/${name}/dev`, 'utf8')).trim().split(':').map(Number);
  if (major === undefined || minor === undefined) throw new Error(`no device number for ${name}`);
  return { major, minor };
}

/** Size in bytes of a block device (/sys/class/block/NAME/size is in 512-byte sectors). */
export async function deviceBytes(name: string): Promise<number> {
  return Number((await readFile(`/sys/class/block/${name}/size`, 'utf8')).trim()) * 512;
}
