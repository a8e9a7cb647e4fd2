/**
 * The helper (kernel driver, in this process) and the CLI (its main(), in this
 * process too: each node start costs seconds under TCG) on the real VAL-7.0 module.
 * What the CLI prints is checked against the module's own reporting: its version in
 * sysfs, the device size in sysfs, the image device node the module created, and
 * the CBT map predicted from the writes made (CbtModel).
 */
import { deepStrictEqual, equal, ok } from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, stat, unlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { main as cliMain } from '../../../engine/cli/main.js';
import { startDaemon } from '../../../engine/helper/index.js';
import type { DaemonHandle } from '../../../engine/helper/index.js';
import { CbtModel, mapDifferences } from './cbt-model.js';
import { MiB, deviceBytes, readRange, sha256Of, writeRandom } from './block-io.js';
import type { ScenarioContext } from './scenario.js';

const SOCKET = '/tmp/helper.sock';
const run = promisify(execFile);

interface CliRun {
  status: number;
  out: string;
  err: string;
}

async function cli(...argv: string[]): Promise<CliRun> {
  let out = '';
  let err = '';
  const status = await cliMain([...argv, '--socket', SOCKET], {
    stdout: (t) => void (out += t),
    stderr: (t) => void (err += t),
    isTty: false,
  });
  return { status, out, err };
}

/** Runs a CLI command that must succeed; its KEY=VALUE lines as an object. */
async function cliOk(...argv: string[]): Promise<{ text: string; values: Record<string, string> }> {
  const r = await cli(...argv);
  equal(r.status, 0, `blksnap-manager ${argv.join(' ')} failed: ${r.err}`);
  const values: Record<string, string> = {};
  for (const line of r.out.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) values[line.slice(0, at)] = line.slice(at + 1);
  }
  return { text: r.out, values };
}

export async function helperCliScenario(ctx: ScenarioContext, original: string, work: string): Promise<void> {
  const { steps } = ctx;
  const log: string[] = [];
  const daemon = await steps.run('helper starts with the kernel driver and reports the module health', async () => {
    const d = await startDaemon({ socketPath: SOCKET, stateDir: `${work}/state`, driver: 'kernel', log: (m) => log.push(m) });
    equal(d.driver, 'kernel');
    // the module health line the helper also sends in hello (and the UI shows)
    const listening = log.find((m) => m.startsWith('helper listening'));
    ok(
      /kernel module: veeamblksnap 7\.0\.0\.0 \(VAL-7 dialect\) is loaded; bdevfilter is loaded/.test(listening ?? ''),
      `the helper's module health line: ${listening}`,
    );
    return d;
  });
  if (!daemon) return;
  let current = daemon;
  try {
    await runCli(ctx, daemon, original, work);
    await steps.run('helper restarted while a grown snapshot is held: it takes the mapped files back, grows again, and destroy removes all three', async () => {
      const restarted = await restartedGrow(original, work, ctx.imageName, daemon, log, (d) => (current = d));
      return restarted;
    });
  } finally {
    await current.close();
  }
}

/**
 * A snapshot grown by one helper, the helper stopped (the module keeps the snapshot,
 * the files stay pinned), a new helper on the same state: grown again, written past
 * what the first grow gave, compared and destroyed.
 */
async function restartedGrow(
  original: string,
  work: string,
  imageName: string,
  first: DaemonHandle,
  log: string[],
  setCurrent: (d: DaemonHandle) => void,
): Promise<unknown> {
  const size = await deviceBytes(original.replace('/dev/', ''));
  const storage = `${work}/diff-restart`;
  const created = await cliOk('snapshot_create', '-d', original, '-f', storage, '-l', '2M');
  const id = created.text.trim().split('\n').at(-1) ?? '';
  const hashAtTake = await sha256Of(original, size);
  await cliOk('snapshot_take', '-i', id);
  await cliOk('storage_grow', '-i', id, '--by', '4M');
  await first.close();
  log.length = 0;
  const second = await startDaemon({ socketPath: SOCKET, stateDir: `${work}/state`, driver: 'kernel', log: (m) => log.push(m) });
  setCurrent(second);
  ok(log.includes(`snapshot ${id}: took back its mapped difference storage (2 files)`), `the new helper's log: ${log.join(' | ')}`);
  const grow = await cliOk('storage_grow', '-i', id, '--by', '4M');
  equal(Number(grow.values.limit_sectors), (10 * MiB) / 512, 'the limit after both grows: 2 + 4 + 4 MiB');
  // 8 MiB of chunks: more than the 6 MiB before the second grow
  const data = await writeRandom(original, 4 * MiB, 8 * MiB);
  equal(await sha256Of(`/dev/${imageName}`, size), hashAtTake, 'the image equals the device at take');
  equal((await cliOk('snapshot_info', '-d', original)).values.error_code, '0', 'no overflow');
  ok((await readRange(original, 4 * MiB, 8 * MiB)).equals(data), 'the original holds the 8 MiB written');
  await cliOk('snapshot_destroy', '-i', id);
  const left = [storage, `${storage}.grow-1`, `${storage}.grow-2`].filter((p) => existsSync(p));
  deepStrictEqual(left, [], 'destroy cleared the immutable flags and removed the storage and both grow files');
  await cliOk('detach', '-d', original);
  return { id };
}

async function runCli(ctx: ScenarioContext, _daemon: DaemonHandle, original: string, work: string): Promise<void> {
  const { steps } = ctx;
  const sysVersion = (await readFile('/sys/module/veeamblksnap/version', 'utf8')).trim();
  const sysBytes = Number((await readFile('/sys/class/block/vda/size', 'utf8')).trim()) * 512;

  await steps.run('CLI version prints the module version sysfs reports', async () => {
    const { text } = await cliOk('version');
    equal(text.trim(), sysVersion);
    return text.trim();
  });

  // a new attach starts a new CBT map: numbers from 1 again
  const model = new CbtModel(64 * 1024, sysBytes / (64 * 1024));
  await steps.run('CLI devices (tracked from the module), attach, cbtinfo: capacity from sysfs, 64 KiB blocks', async () => {
    const trackedOf = async (): Promise<unknown> => {
      const { text } = await cliOk('devices', '--json');
      const devices = (JSON.parse(text) as { devices: { ref: string; attached: boolean | null }[] }).devices;
      return devices.find((d) => d.ref === original)?.attached;
    };
    equal(await trackedOf(), false, 'devices: the module says vda is not tracked (detached above)');
    await cliOk('attach', '-d', original);
    equal(await trackedOf(), true, 'devices: the module says vda is tracked');
    const { values } = await cliOk('cbtinfo', '-d', original);
    equal(Number(values.device_capacity), sysBytes);
    equal(Number(values.block_size), model.blockSize);
    equal(Number(values.block_count), model.blockCount);
    equal(Number(values.changes_number), 0);
    ok(/^[0-9a-f-]{36}$/.test(values.generation_id ?? ''));
    return values;
  });

  await steps.run('the installed bin (bin/blksnap-manager.mjs on dist) prints the same cbtinfo', async () => {
    // asynchronously: the helper answering it runs in this process's event loop
    const r = await run('/usr/bin/node', ['/app/bin/blksnap-manager.mjs', 'cbtinfo', '-d', original, '--socket', SOCKET], {
      encoding: 'utf8',
    });
    const inProcess = await cliOk('cbtinfo', '-d', original);
    equal(r.stdout, inProcess.text);
    ok(r.stdout.includes(`device_capacity=${sysBytes}\n`), r.stdout);
    return r.stdout;
  });

  await steps.run('CLI snapshot_create, take, snapshot_info, readcbtmap bytes, destroy, detach', async () => {
    await writeRandom(original, 5 * MiB, 512 * 1024);
    model.written(5 * MiB, 512 * 1024);
    const created = await cliOk('snapshot_create', '-d', original, '-f', `${work}/diff-cli`, '-l', '16M');
    const id = created.text.trim().split('\n').at(-1) ?? '';
    ok(/^[0-9a-f-]{36}$/.test(id), `snapshot_create printed an id: ${created.text}`);
    await cliOk('snapshot_take', '-i', id);
    model.taken();
    const info = await cliOk('snapshot_info', '-d', original);
    equal(info.values.error_code, '0');
    equal(info.values.image, ctx.imageName);
    equal(info.values.snapshot, id);
    ok((await stat(`/dev/${ctx.imageName}`)).isBlockDevice(), 'the module made the image device the CLI names');
    const cbt = await cliOk('readcbtmap', '-d', original, '-f', `${work}/cli.cbt`);
    equal(Number(cbt.values.length), model.blockCount);
    equal(Number(cbt.values.changes_number), 1);
    const bytes = new Uint8Array(await readFile(`${work}/cli.cbt`));
    deepStrictEqual(mapDifferences(bytes, model.read), [], 'the map file holds the module map the writes predict');
    await cliOk('snapshot_destroy', '-i', id);
    await cliOk('detach', '-d', original);
    return { id, info: info.values, cbt: cbt.values, marked: bytes.filter((b) => b !== 0).length };
  });

  await steps.run('CLI snapshot on a 2 MiB new-file storage (mapped, append mode): 6 MiB written after take overflow it', () =>
    mappedOverflow(original, work, ctx.imageName),
  );
  await steps.run('CLI storage_grow: a held snapshot grown by 8 MiB takes 6 MiB past its 2 MiB limit; image equals the take; destroy removes the grow file', () =>
    grownSnapshot(original, work, ctx.imageName),
  );
}

/** snapshot_info's error_code once it is `want`, or the last one after 10 s. */
async function errorCodeBecomes(original: string, want: string): Promise<string> {
  let code = '';
  for (let i = 0; i < 100; i++) {
    code = (await cliOk('snapshot_info', '-d', original)).values.error_code ?? '';
    if (code === want) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return code;
}

/** The control: what the grow below must change. The storage is mapped now, and it still ends at its limit. */
async function mappedOverflow(original: string, work: string, imageName: string): Promise<unknown> {
  const created = await cliOk('snapshot_create', '-d', original, '-f', `${work}/diff-mapped`, '-l', '2M');
  const id = created.text.trim().split('\n').at(-1) ?? '';
  try {
    let pinned = '';
    await unlink(`${work}/diff-mapped`).catch((err: { code?: string }) => (pinned = err.code ?? ''));
    equal(pinned, 'EPERM', 'the storage file is mapped: immutable while the module writes into it');
    await cliOk('snapshot_take', '-i', id);
    await writeRandom(original, 8 * MiB, 6 * MiB);
    equal(await errorCodeBecomes(original, '-28'), '-28', 'snapshot_info error_code: the 2 MiB storage overflowed (-ENOSPC)');
    let unreadable = false;
    await readRange(`/dev/${imageName}`, 8 * MiB, 4096).catch(() => (unreadable = true));
    ok(unreadable, 'the corrupted image cannot be read');
  } finally {
    await cliOk('snapshot_destroy', '-i', id);
  }
  ok(!existsSync(`${work}/diff-mapped`), 'destroy removed the storage file');
  return { id };
}

async function grownSnapshot(original: string, work: string, imageName: string): Promise<unknown> {
  const size = await deviceBytes(original.replace('/dev/', ''));
  const storage = `${work}/diff-grow`;
  const grown = `${storage}.grow-1`;
  const created = await cliOk('snapshot_create', '-d', original, '-f', storage, '-l', '2M');
  const id = created.text.trim().split('\n').at(-1) ?? '';
  const hashAtTake = await sha256Of(original, size);
  let data: Buffer;
  try {
    await cliOk('snapshot_take', '-i', id);
    const grow = await cliOk('storage_grow', '-i', id, '--by', '8M');
    equal(Number(grow.values.limit_sectors), (10 * MiB) / 512, 'storage_grow prints the new limit: 2 MiB + 8 MiB');
    equal((await stat(grown)).size, 8 * MiB, 'the grow file next to the storage holds 8 MiB');
    let pinned = '';
    await unlink(grown).catch((err: { code?: string }) => (pinned = err.code ?? ''));
    equal(pinned, 'EPERM', 'the grow file cannot be removed while the module writes into it (immutable)');
    data = await writeRandom(original, 8 * MiB, 6 * MiB);
    equal(await sha256Of(`/dev/${imageName}`, size), hashAtTake, 'the image equals the device at take');
    equal((await cliOk('snapshot_info', '-d', original)).values.error_code, '0', 'snapshot_info error_code 0: no overflow');
    ok((await readRange(original, 8 * MiB, 6 * MiB)).equals(data), 'the original holds the 6 MiB written');
  } finally {
    await cliOk('snapshot_destroy', '-i', id);
  }
  ok(!existsSync(grown), 'destroy removed the grow file');
  ok(!existsSync(storage), 'destroy removed the storage file');
  await cliOk('detach', '-d', original);
  return { id, hashAtTake };
}
