/**
 * A helper killed (SIGKILL) at random moments while it creates snapshots and lab
 * disks: the next start must clean everything it left, and leave nothing unrecorded.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, watch } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../helpers/seeded-random.js';
import { PROTOCOL_VERSION } from '../../../engine/protocol/limits.js';
import { RawConnection, connectClient, spawnDaemon } from './spawn-daemon.js';

const ROUNDS = 8;

describe('a helper killed while it creates files', () => {
  it('[crash] SIGKILL at random points of snapshot create and image create leaves nothing the next start does not clean', async () => {
    const random = seededRandom(0x5eed);
    let d = await spawnDaemon();
    const dir = d.dir;
    const store = join(dir, 'store');
    mkdirSync(store);
    try {
      const c = await connectClient(d.socketPath);
      await c.call('images.create', { path: join(dir, 'disk.img'), size: 4 << 20, name: 'disk' });
      c.close();
      const outcomes: string[] = [];
      let cleanedTotal = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const raw = await RawConnection.open(d.socketPath);
        const send = (m: unknown): void => raw.send(`${JSON.stringify(m)}\n`);
        // the kill lands after the helper has begun creating files (however busy the
        // machine), at a random moment among the creations
        const watcher = watch(store);
        const firstFile = new Promise<void>((resolve) => watcher.once('change', () => resolve()));
        send({ id: 1, method: 'hello', params: { protocolVersion: PROTOCOL_VERSION, client: 'crash-test' } });
        // several creations in flight, the kill lands somewhere among them
        for (let i = 0; i < 4; i++) {
          send({ id: 10 + i, method: 'snapshotCreate', params: { diffStoragePath: join(store, `diff-${round}-${i}`), limitSectors: 8192, devices: ['disk'] } });
          send({ id: 20 + i, method: 'images.create', params: { path: join(store, `lab-${round}-${i}.img`), size: 1 << 20 } });
        }
        await firstFile;
        watcher.close();
        const delayMs = Math.floor(random() * 25);
        await new Promise((r) => setTimeout(r, delayMs));
        d.proc.kill('SIGKILL');
        await new Promise((r) => d.proc.once('exit', r));
        raw.socket.destroy();
        d = await spawnDaemon([], {}, dir);
        // what the new helper keeps: registered lab disks (usable); everything else is gone
        const c2 = await connectClient(d.socketPath);
        const images = (await c2.call('images.list', {})).images.map((i) => i.path);
        const snapshots = (await c2.call('snapshotCollect', {})).ids;
        c2.close();
        const left = readdirSync(store).map((n) => join(store, n));
        expect(snapshots, `round ${round}`).toEqual([]);
        expect(left.filter((p) => !images.includes(p)), `round ${round} (killed ${delayMs} ms after the first file)`).toEqual([]);
        expect(readdirSync(d.stateDir).filter((n) => n.includes('.tmp')), `round ${round}`).toEqual([]);
        expect(JSON.parse(readFileSync(join(d.stateDir, 'storage-files.json'), 'utf8'))).toEqual([]);
        const cleaned = (d.log().match(/removed \S+, .* left by a helper that did not shut down cleanly/g) ?? []).length;
        cleanedTotal += cleaned;
        outcomes.push(`+${delayMs} ms: ${cleaned} removed, ${images.length - 1} lab disks registered`);
      }
      console.log(`helper killed ${ROUNDS} times: ${outcomes.join('; ')}`);
      // the kills really landed while files were being created
      expect(cleanedTotal).toBeGreaterThan(0);
    } finally {
      await d.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
