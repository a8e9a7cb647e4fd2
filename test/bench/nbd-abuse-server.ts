/**
 * The server side of test/bench/nbd-abuse.ts, in its own process so that its
 * RSS is the server's alone: an embedded engine exporting a 256 MiB file-backed
 * device through NbdServer with the default limits, as the helper runs it.
 * Commands on stdin, one JSON line back on stdout for each:
 *   stats       -> server.stats(), device reads so far, RSS, peak RSS
 *   reset-peak  -> resets the kernel's peak-RSS mark (VmHWM)
 *   gc          -> a full garbage collection (the bench starts it with --expose-gc)
 *   wait-idle   -> answers when no connection is left: the monotonic time then
 * Run by the bench: node --expose-gc --import tsx test/bench/nbd-abuse-server.ts DIR
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { BlockDevice } from '../../engine/core/block-device.js';
import { createEmbeddedEngine } from '../../engine/core/index.js';
import { engineExports } from '../../engine/nbd/engine-exports.js';
import type { ExportSource } from '../../engine/nbd/export-source.js';
import { NbdServer } from '../../engine/nbd/server.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: nbd-abuse-server.ts DIR');
const MiB = 1024 * 1024;
const image = join(dir, 'disk.img');
await writeFile(image, '');
await truncate(image, 256 * MiB);
const engine = createEmbeddedEngine();
await engine.addDevice({ path: image, name: 'disk1' });

let reads = 0;
/** Counts the device reads (readTo) the server makes. */
function counting(device: BlockDevice): BlockDevice {
  const readTo = device.readTo?.bind(device);
  return new Proxy(device, {
    get(target, prop, receiver) {
      if (prop === 'readTo' && readTo !== undefined) {
        return (offset: number, length: number, buf: Buffer, at: number) => {
          reads++;
          return readTo(offset, length, buf, at);
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
const inner = engineExports(engine);
const exports: ExportSource = {
  list: () => inner.list(),
  open: (name) => {
    const device = inner.open(name);
    return device === undefined ? undefined : counting(device);
  },
};
const server = new NbdServer({ exports, unixSocket: join(dir, 'nbd.sock') });
await server.start();

function memory(): { rss: number; peakRss: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kib('VmRSS'), peakRss: kib('VmHWM') };
}

const say = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value)}\n`);
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line === 'stats') say({ ...server.stats(), reads, ...memory() });
  else if (line === 'reset-peak') {
    writeFileSync('/proc/self/clear_refs', '5');
    say({ ok: true });
  } else if (line === 'gc') {
    (globalThis as { gc?: () => void }).gc?.();
    say({ ok: true });
  } else if (line === 'wait-idle') {
    while (server.stats().connections > 0) await new Promise((resolve) => setTimeout(resolve, 1));
    say({ idleAt: process.hrtime.bigint().toString(), reads });
  } else if (line === 'quit') break;
}
await server.close();
await engine.close();
say({ closed: true });
