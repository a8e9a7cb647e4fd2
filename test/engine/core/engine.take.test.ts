/**
 * Take under load: many writes in flight on two devices (several on the same chunk)
 * while the snapshot is taken. Every write must be wholly in the images (it happened
 * before the take) or wholly out of them (after), and the cut must be coherent
 * across the devices: in chains of writes that alternate between the devices, each
 * write issued after the previous one completed, the writes in the images form a
 * prefix of every chain.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedEngine } from '../../../engine/core/index.js';
import type { EmbeddedEngine } from '../../../engine/core/index.js';
import { makeImage, tempDir } from './helpers.js';

const SECTOR = 512;
const DEV_BYTES = 2 << 20;
const DEV_SECTORS = DEV_BYTES / SECTOR;

let dir: string;
let engine: EmbeddedEngine;

beforeEach(async () => {
  dir = tempDir('take');
  // 4 KiB chunks (8 sectors) so that many writes share chunks; a small queue and
  // pool so that storing, backpressure and buffer reuse all happen during the test.
  engine = createEmbeddedEngine({
    params: { chunkMinimumShift: 12, trackingBlockMinimumShift: 12, chunkMaximumInQueue: 2, freeDiffBufferPoolSize: 4 },
  });
  await engine.addDevice({ path: makeImage(dir, 'a.img', DEV_BYTES, 0xaa), name: 'a' });
  await engine.addDevice({ path: makeImage(dir, 'b.img', DEV_BYTES, 0xbb), name: 'b' });
});

afterEach(async () => {
  await engine.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Write {
  dev: 'a' | 'b';
  sector: number;
  sectors: number;
  data: Buffer;
  issued: number;
  done: number;
}

/** A pseudo-random generator with a fixed seed, so that a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const totals = { pre: 0, post: 0, overlapping: 0 };

async function runRound(seed: number): Promise<void> {
  const rand = rng(seed);
  const id = await engine.snapshotCreate({ diffStoragePath: path.join(dir, `diff${seed}`), limitSectors: 1 << 20 });
  await engine.snapshotAdd(id, 'a');
  await engine.snapshotAdd(id, 'b');

  // Each write goes to its own sectors: 4-sector slots, half of a chunk each, so
  // two writes share every chunk; slots are handed out in random order.
  const slots = { a: shuffled(DEV_SECTORS / 4, rand), b: shuffled(DEV_SECTORS / 4, rand) };
  let clock = 0;
  const writes: Write[] = [];
  const chains: Write[][] = [];
  let takeStarted = -1;
  let takeDone = -1;

  const doWrite = async (dev: 'a' | 'b'): Promise<Write> => {
    const slot = slots[dev].pop()!;
    const sectors = 1 + Math.floor(rand() * 4);
    const data = Buffer.alloc(sectors * SECTOR);
    for (let k = 0; k < sectors; k++) data.fill(1 + ((slot * 5 + k) % 250), k * SECTOR, (k + 1) * SECTOR);
    const w: Write = { dev, sector: slot * 4, sectors, data, issued: ++clock, done: -1 };
    writes.push(w);
    await engine.device(dev).write(w.sector * SECTOR, data);
    w.done = ++clock;
    return w;
  };

  const chain = async (start: 'a' | 'b', length: number): Promise<void> => {
    const c: Write[] = [];
    chains.push(c);
    let dev = start;
    for (let i = 0; i < length; i++) {
      c.push(await doWrite(dev));
      dev = dev === 'a' ? 'b' : 'a';
      if (rand() < 0.3) await new Promise((r) => setImmediate(r));
    }
  };

  const load = Promise.all([
    ...Array.from({ length: 24 }, (_, i) => chain(i % 2 ? 'a' : 'b', 12)),
    // and independent bursts of writes to random slots
    ...Array.from({ length: 64 }, (_, i) => doWrite(i % 2 ? 'a' : 'b')),
  ]);
  // Take while the writes are in flight.
  await new Promise((r) => setTimeout(r, rand() * 3));
  takeStarted = ++clock;
  await engine.snapshotTake(id);
  takeDone = ++clock;
  await load;

  const images = {
    a: await engine.image((await engine.snapshotInfo('a')).image).read(0, DEV_BYTES),
    b: await engine.image((await engine.snapshotInfo('b')).image).read(0, DEV_BYTES),
  };
  const originals = { a: await engine.device('a').read(0, DEV_BYTES), b: await engine.device('b').read(0, DEV_BYTES) };
  const old = { a: 0xaa, b: 0xbb };
  const inImage = new Map<Write, boolean>();
  let pre = 0;
  for (const w of writes) {
    const img = images[w.dev].subarray(w.sector * SECTOR, (w.sector + w.sectors) * SECTOR);
    const isNew = img.equals(w.data);
    const isOld = img.every((x) => x === old[w.dev]);
    expect(isNew || isOld, `write to ${w.dev}@${w.sector} is torn in the image`).toBe(true);
    inImage.set(w, isNew);
    if (isNew) pre++;
    // The original always has the write.
    expect(originals[w.dev].subarray(w.sector * SECTOR, (w.sector + w.sectors) * SECTOR).equals(w.data)).toBe(true);
    // Completed before the take began: in the image. Issued after it ended: not.
    if (w.done < takeStarted) expect(isNew).toBe(true);
    if (w.issued > takeDone) expect(isNew).toBe(false);
  }
  // Coherence across the devices: each chain is cut once.
  for (const c of chains) {
    const flags = c.map((w) => inImage.get(w)!);
    const firstOut = flags.indexOf(false);
    if (firstOut >= 0) expect(flags.slice(firstOut).every((f) => !f), `chain ${flags.join(',')}`).toBe(true);
  }
  // Untouched sectors of the image still hold the old content.
  const touched = { a: new Uint8Array(DEV_SECTORS), b: new Uint8Array(DEV_SECTORS) };
  for (const w of writes) touched[w.dev].fill(1, w.sector, w.sector + w.sectors);
  for (const dev of ['a', 'b'] as const) {
    for (let s = 0; s < DEV_SECTORS; s++) {
      if (!touched[dev][s] && images[dev][s * SECTOR] !== old[dev]) throw new Error(`${dev} sector ${s} changed in the image`);
    }
  }
  totals.pre += pre;
  totals.post += writes.length - pre;
  totals.overlapping += writes.filter((w) => w.issued < takeDone && w.done > takeStarted).length;
  await engine.snapshotDestroy(id);
  // Reset the devices for the next round.
  await engine.device('a').write(0, Buffer.alloc(DEV_BYTES, 0xaa));
  await engine.device('b').write(0, Buffer.alloc(DEV_BYTES, 0xbb));
}

function shuffled(n: number, rand: () => number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

describe('snapshot take under concurrent writes', () => {
  it('every write is wholly before or after the take, coherently across two devices', async () => {
    for (let seed = 1; seed <= 20; seed++) await runRound(seed);
    // The take really happened in the middle of the load.
    expect(totals.pre).toBeGreaterThan(0);
    expect(totals.post).toBeGreaterThan(0);
    expect(totals.overlapping).toBeGreaterThan(20);
    console.log(`take under load: ${JSON.stringify(totals)}`);
  });
});
