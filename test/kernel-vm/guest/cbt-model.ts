/**
 * What the VAL-7.0 module's CBT map must hold, computed from the writes the scenario
 * made (module/cbt_map.c): a write marks its blocks in the write map with the active
 * number (1 after attach); a take copies the write map to the read map (what cbtmap
 * returns) and advances the active number; markdirtyblock marks both maps (the read
 * map with the number of the last take).
 */
export class CbtModel {
  private active = 1;
  private write: Uint8Array;
  read: Uint8Array;

  constructor(
    readonly blockSize: number,
    readonly blockCount: number,
  ) {
    this.write = new Uint8Array(blockCount);
    this.read = new Uint8Array(blockCount);
  }

  /** The change number cbtinfo reports: the number of takes so far. */
  get changesNumber(): number {
    return this.active - 1;
  }

  private blocks(offsetBytes: number, lengthBytes: number): number[] {
    const first = Math.floor(offsetBytes / this.blockSize);
    const last = Math.floor((offsetBytes + lengthBytes - 1) / this.blockSize);
    return Array.from({ length: last - first + 1 }, (_, i) => first + i);
  }

  written(offsetBytes: number, lengthBytes: number): void {
    for (const b of this.blocks(offsetBytes, lengthBytes)) this.write[b] = Math.max(this.write[b] ?? 0, this.active);
  }

  taken(): void {
    this.read = Uint8Array.from(this.write);
    this.active += 1;
  }

  markedDirty(offsetBytes: number, lengthBytes: number): void {
    for (const b of this.blocks(offsetBytes, lengthBytes)) {
      this.write[b] = Math.max(this.write[b] ?? 0, this.active);
      this.read[b] = Math.max(this.read[b] ?? 0, this.active - 1);
    }
  }
}

/** Indices where two maps differ (at most `limit`), for failure messages. */
export function mapDifferences(got: Uint8Array, want: Uint8Array, limit = 8): string[] {
  const out: string[] = [];
  if (got.length !== want.length) out.push(`length ${got.length} != ${want.length}`);
  for (let i = 0; i < Math.min(got.length, want.length) && out.length < limit; i++) {
    if (got[i] !== want[i]) out.push(`block ${i}: ${got[i]} != ${want[i]}`);
  }
  return out;
}
