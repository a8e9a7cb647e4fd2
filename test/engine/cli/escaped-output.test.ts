/**
 * Names and paths with control characters that come from the system (lsblk, a state
 * file, a file name) reach the terminal escaped: CLI tables, key=value lines, errors
 * and the helper's log lines show "\x1b", never a raw ESC.
 */
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, truncateSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../engine/cli/main.js';
import { PROTOCOL_VERSION } from '../../../engine/protocol/limits.js';
import { spawnDaemon } from '../helper/spawn-daemon.js';
import type { SpawnedDaemon } from '../helper/spawn-daemon.js';

const ESC = '\x1b';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
  return { code, out, err };
}

/** A block device as lsblk may name it: a hostile name and mount point. */
const DEVICE = {
  ref: `/dev/sd${ESC}[2Jx`,
  name: `sd${ESC}[2Jx`,
  path: `/dev/sd${ESC}[2Jx`,
  kind: 'block',
  capacity: 1024 * 1024,
  model: 'disk\u009b2J',
  mountpoints: [`/mnt/a\nb`],
  attached: null,
  snapshotId: null,
  nbdUri: null,
};

/** A stand-in helper that answers hello and devices.list (the kernel driver's lsblk view). */
function fakeHelper(socketPath: string): Promise<Server> {
  const server = createServer((socket) => {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const request = JSON.parse(buffer.slice(0, nl)) as { id: number; method: string };
        buffer = buffer.slice(nl + 1);
        const result =
          request.method === 'hello'
            ? { protocolVersion: PROTOCOL_VERSION, driver: 'kernel', driverVersion: '7.0.0.0', capabilities: [] }
            : { devices: [DEVICE] };
        socket.write(`${JSON.stringify({ id: request.id, result })}\n`);
      }
    });
  });
  return new Promise((resolve) => server.listen(socketPath, () => resolve(server)));
}

describe('blksnap-manager output of names with control characters', () => {
  it('devices: a block device whose name holds ESC shows \\x1b in the table, not a raw ESC', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bm-esc-'));
    const server = await fakeHelper(join(dir, 'h.sock'));
    try {
      const r = await run(['devices', '--socket', join(dir, 'h.sock')]);
      expect(r.err).toBe('');
      expect(r.out).not.toContain(ESC);
      expect(r.out.split('\n')[1]).toMatch(/^block\s+\/dev\/sd\\x1b\[2Jx\s+1M\s+-\s+-$/);
      // --json keeps the data as it is, with C0 (by JSON itself), DEL and C1 escaped
      const j = await run(['devices', '--json', '--socket', join(dir, 'h.sock')]);
      expect(j.out).toContain('"ref": "/dev/sd\\u001b[2Jx"');
      expect(j.out).toContain('"model": "disk\\u009b2J"');
      expect(j.out).not.toContain('\u009b');
      expect((JSON.parse(j.out) as { devices: { model: string }[] }).devices[0]?.model).toBe('disk\u009b2J');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('blksnap-manager and the helper log with a registered image path holding ESC', () => {
  let d: SpawnedDaemon;
  let dir: string;
  const weird = `e${ESC}[31m.img`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-esc-state-'));
    // a state file from the system: one image whose file name holds ESC, one that cannot open
    mkdirSync(join(dir, 'state'), { recursive: true });
    writeFileSync(join(dir, weird), '');
    truncateSync(join(dir, weird), 1024 * 1024);
    const entry = (name: string, path: string): object => ({ name, path, size: 1024 * 1024, kind: 'file', created: false, registeredAt: new Date(0).toISOString() });
    const images = [entry('weird', join(dir, weird)), entry('gone', join(dir, `gone${ESC}]0;title\x07.img`))];
    writeFileSync(join(dir, 'state', 'images.json'), JSON.stringify({ version: 1, images }));
    d = await spawnDaemon([], {}, dir);
  });

  afterAll(async () => {
    await d?.cleanup();
  });

  it('image list shows the path escaped; the log line about the missing image too', async () => {
    const r = await run(['image', 'list', '--socket', d.socketPath]);
    expect(r.out).not.toContain(ESC);
    expect(r.out).toContain(`${join(dir, 'e')}\\x1b[31m.img`);
    expect(d.log()).toContain(`cannot open registered image gone (${join(dir, 'gone')}\\x1b]0;title\\x07.img)`);
    expect(d.log()).not.toContain(ESC);
    expect(d.log()).not.toContain('\x07');
  });

  it('refuses a path with a control character as input: EINVAL naming the field', async () => {
    const r = await run(['image', 'add', '--path', join(dir, weird), '--socket', d.socketPath]);
    expect(r.code).toBe(22);
    expect(r.err).toContain('EINVAL: invalid parameters for images.add: path: contains the control character \\x1b at position');
    expect(r.err).not.toContain(ESC);
    const n = await run(['snapshot_create', '-d', 'a\nb', '-f', join(dir, 'diff'), '-l', '1M', '--socket', d.socketPath]);
    expect(n).toMatchObject({ code: 22, err: expect.stringContaining('devices.0: contains the control character \\n at position 1') });
  });
});
