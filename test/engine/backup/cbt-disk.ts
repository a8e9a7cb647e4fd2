/**
 * A disk with change-block tracking as the backup layer sees it, kept in memory for
 * the tests: writes raise their tracking blocks to the active change number; take()
 * returns a frozen copy of the image, the CBT map and the change number of that take
 * (blocks written before it carry at most that number), as blksnap's cbtinfo and
 * cbtmap do after a take.
 */
import { createHash } from 'node:crypto';
import type { DeviceIdentity } from '../../../engine/backup/manifest.js';
import type { ChainCbt } from '../../../engine/backup/chain.js';
import { seededRandom } from '../../helpers/seeded-random.js';
import { sparseImage } from './sparse-data.js';

export interface Take {
  image: Buffer;
  cbt: ChainCbt;
  cbtMap: Uint8Array;
  sha256: string;
}

export class CbtDisk {
  data: Buffer;
  map: Uint8Array;
  active = 1;
  generationId = 'gen-1';

  constructor(
    readonly blockSize: number,
    size: number,
    seed: number,
    readonly device: DeviceIdentity = { path: '/dev/vdb', size, model: 'QEMU HARDDISK', serial: 'A1' },
  ) {
    this.data = sparseImage({ size, seed });
    this.map = new Uint8Array(Math.ceil(size / blockSize)).fill(1);
  }

  write(offset: number, bytes: Buffer): void {
    bytes.copy(this.data, offset);
    for (let b = Math.floor(offset / this.blockSize); b * this.blockSize < offset + bytes.length; b++) this.map[b] = this.active;
  }

  /** Rewrites `fraction` of the tracking blocks (random ones) with new random bytes; returns their indexes. */
  changeBlocks(fraction: number, seed: number): number[] {
    const rnd = seededRandom(seed);
    const count = Math.max(1, Math.round(this.map.length * fraction));
    const picked = new Set<number>();
    while (picked.size < count) picked.add(Math.floor(rnd() * this.map.length));
    for (const b of picked) {
      const len = Math.min(this.blockSize, this.data.length - b * this.blockSize);
      const bytes = Buffer.alloc(len);
      for (let i = 0; i < len; i += 4) bytes.writeUInt32LE(Math.floor(rnd() * 2 ** 32), i);
      this.write(b * this.blockSize, bytes);
    }
    return [...picked].sort((a, b) => a - b);
  }

  take(): Take {
    const image = Buffer.from(this.data);
    const t: Take = {
      image,
      cbt: { generationId: this.generationId, changeNumber: this.active, blockSize: this.blockSize },
      cbtMap: Uint8Array.from(this.map),
      sha256: createHash('sha256').update(image).digest('hex'),
    };
    this.active++;
    return t;
  }

  /** What a reboot does to the tracker: a new generation, the map starts over. */
  reset(): void {
    this.generationId = `gen-${Number(this.generationId.slice(4)) + 1}`;
    this.map.fill(0);
    this.active = 1;
  }
}

/** A source reader over a frozen image. */
export function readerOf(image: Buffer): (offset: number, length: number) => Promise<Buffer> {
  return (offset, length) => Promise.resolve(Buffer.from(image.subarray(offset, offset + length)));
}
