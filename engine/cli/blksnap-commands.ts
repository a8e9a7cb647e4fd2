/** The commands of the blksnap console tool, as clients of the helper. */
import { open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { BlksnapError, errnoName } from '../abi/errno.js';
import { decodeCbtMap } from '../protocol/cbt-encoding.js';
import { MAX_CBT_MAP_LENGTH } from '../protocol/limits.js';
import { escapeControlChars } from '../protocol/control-chars.js';
import { StorageFormSchema } from '../protocol/schemas.js';
import type { CommandSpec } from './command.js';
import { needSnapshotId, needString, optList, printFields, printJson, toJson } from './command.js';
import { formatEvent } from './event-format.js';
import { bytesToSectors, parseRange, parseSize, parseTimeout } from './values.js';

const DEV: [string, string] = ['-d, --device DEV', 'block device path, or (embedded engine) an image path or name'];
const ID: [string, string] = ['-i, --id ID', 'snapshot id (as printed by snapshot_create; snapshot_collect lists them)'];
const EXAMPLE_ID = '34c88ecd-cacf-45e4-a00d-f2ffa0f87e23';

/** What an error_code of snapshot_info means, and what to do about it. */
export function explainErrorCode(code: number): string {
  if (code === 0) return '';
  const name = errnoName(code) ?? `errno ${Math.abs(code)}`;
  if (name === 'ENOSPC') {
    return `${name}: the difference storage overflowed, so the snapshot image is corrupted; destroy the snapshot and create it again with a larger --limit`;
  }
  return `${name}: the snapshot image is corrupted (reads fail); destroy the snapshot and create it again`;
}

/** Opens the output file of readcbtmap, with a message that names it and says what is wrong. */
async function openOutput(file: string): Promise<Awaited<ReturnType<typeof open>>> {
  try {
    return await open(file, 'w', 0o644);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOENT') throw new BlksnapError('ENOENT', `cannot write the CBT map to ${file}: the directory ${dirname(file)} does not exist`);
    if (code === 'EISDIR') throw new BlksnapError('EISDIR', `cannot write the CBT map to ${file}: it is a directory; name a file`);
    if (code === 'EACCES' || code === 'EPERM') throw new BlksnapError('EACCES', `cannot write the CBT map to ${file}: permission denied`);
    throw err;
  }
}
const device = { device: { type: 'string', short: 'd' } } as const;
const id = { id: { type: 'string', short: 'i' } } as const;

export const blksnapCommands: CommandSpec[] = [
  {
    name: 'version',
    summary: 'print the blksnap driver version',
    usage: '',
    help: [],
    example: 'blksnap-manager version',
    prints: 'MAJOR.MINOR.REVISION.BUILD',
    options: {},
    needsHelper: true,
    async run({ client, io, json }) {
      const v = await client.call('version', {});
      if (json) printJson(io, v);
      else io.stdout(`${v.major}.${v.minor}.${v.revision}.${v.build}\n`);
    },
  },
  {
    name: 'attach',
    summary: 'attach the blksnap filter to a device (start change tracking)',
    usage: '-d DEV',
    help: [DEV],
    example: ['blksnap-manager attach -d /dev/sdb', 'blksnap-manager attach -d disk1'],
    options: device,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const r = await client.call('attach', { device: needString(values, 'device', '--device DEV') });
      if (json) printJson(io, r);
    },
  },
  {
    name: 'detach',
    summary: 'detach the blksnap filter from a device (stop change tracking)',
    usage: '-d DEV',
    help: [DEV],
    example: ['blksnap-manager detach -d /dev/sdb', 'blksnap-manager detach -d disk1'],
    options: device,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const r = await client.call('detach', { device: needString(values, 'device', '--device DEV') });
      if (json) printJson(io, r);
    },
  },
  {
    name: 'cbtinfo',
    summary: 'print the change tracker of a device',
    usage: '-d DEV',
    help: [DEV],
    example: ['blksnap-manager cbtinfo -d /dev/sdb', 'blksnap-manager cbtinfo -d disk1 --json'],
    prints: 'device_capacity (bytes), block_size (bytes), block_count, generation_id and changes_number as KEY=VALUE lines',
    options: device,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const info = await client.call('cbtInfo', { device: needString(values, 'device', '--device DEV') });
      if (json) printJson(io, info);
      else
        printFields(io, [
          ['device_capacity', info.deviceCapacity],
          ['block_size', info.blockSize],
          ['block_count', info.blockCount],
          ['generation_id', info.generationId],
          ['changes_number', info.changesNumber],
        ]);
    },
  },
  {
    name: 'readcbtmap',
    summary: 'write the raw CBT map (one byte per tracking block) to a file',
    usage: '-d DEV -f FILE [--active]',
    help: [
      DEV,
      ['-f, --file FILE', 'output file (created or truncated)'],
      ['--active', 'the active table, with the writes since the last take (embedded engine only; default: the table of the last take)'],
    ],
    example: ['blksnap-manager readcbtmap -d /dev/sdb -f /tmp/sdb.cbt', 'blksnap-manager readcbtmap -d disk1 -f /tmp/disk1.active.cbt --active'],
    prints: 'length (map bytes written), changes_number and generation_id as KEY=VALUE lines (and table=active with --active); progress on a terminal\'s stderr for large maps',
    options: { ...device, file: { type: 'string', short: 'f' }, active: { type: 'boolean' } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const dev = needString(values, 'device', '--device DEV');
      const file = resolve(needString(values, 'file', '--file FILE'));
      const active = values.active === true;
      const info = await client.call('cbtInfo', { device: dev });
      const out = await openOutput(file);
      const progress = io.isTty === true && info.blockCount > MAX_CBT_MAP_LENGTH;
      let offset = 0;
      try {
        while (offset < info.blockCount) {
          if (progress) io.stderr(`\rreading the CBT map: ${Math.floor((offset * 100) / info.blockCount)}% (${offset} of ${info.blockCount} blocks)`);
          const length = Math.min(MAX_CBT_MAP_LENGTH, info.blockCount - offset);
          const portion = await client.call('cbtMap', active ? { device: dev, offset, length, table: 'active' } : { device: dev, offset, length });
          if (portion.length === 0) break;
          const bytes = decodeCbtMap(portion.data, portion.length);
          await out.write(bytes, 0, bytes.length, offset);
          offset += bytes.length;
        }
      } finally {
        await out.close();
        if (progress) io.stderr('\r\x1b[K');
      }
      const table = active ? 'active' : 'snapshot';
      if (json) printJson(io, { file, table, length: offset, blockSize: info.blockSize, changesNumber: info.changesNumber, generationId: info.generationId });
      else {
        const fields: [string, string | number][] = [['length', offset], ['changes_number', info.changesNumber], ['generation_id', info.generationId]];
        if (active) fields.push(['table', table]);
        printFields(io, fields);
      }
    },
  },
  {
    name: 'markdirtyblock',
    summary: 'mark sector ranges as changed in the CBT map',
    usage: '-d DEV -r SECTOR:COUNT [-r SECTOR:COUNT...]',
    help: [DEV, ['-r, --range SECTOR:COUNT', 'range in 512-byte sectors (repeatable)']],
    example: 'blksnap-manager markdirtyblock -d /dev/sdb -r 0:8 -r 2048:16',
    options: { ...device, range: { type: 'string', short: 'r', multiple: true } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const ranges = optList(values, 'range').map(parseRange);
      if (ranges.length === 0) throw new BlksnapError('EINVAL', 'missing --range SECTOR:COUNT (see --help)');
      const dev = needString(values, 'device', '--device DEV');
      const { deviceCapacity } = await client.call('cbtInfo', { device: dev });
      const sectors = Math.floor(deviceCapacity / 512);
      for (const range of ranges) {
        if (range.offset + range.count > sectors) {
          throw new BlksnapError('EINVAL', `range ${range.offset}:${range.count} ends beyond the device ${dev} (${sectors} sectors of 512 bytes)`);
        }
      }
      const r = await client.call('cbtDirty', { device: dev, ranges });
      if (json) printJson(io, r);
    },
  },
  {
    name: 'snapshot_create',
    summary: 'create a snapshot with a difference storage and add devices; prints the id',
    usage: '-d DEV [-d DEV...] -f DIFF_STORAGE [--storage-form FORM] -l LIMIT [--writable-images] [--name NAME]',
    help: [
      ['-d, --device DEV', 'device to add (repeatable)'],
      ['-f, --file DIFF_STORAGE', 'the difference storage, as --storage-form says (default: a new file to create; it must not exist, its directory must; removed with the snapshot)'],
      [
        '--storage-form FORM',
        'what -f names: new-file (default), existing-file (a regular file you prepared: its size is the starting capacity; kept, never truncated or removed), ' +
          'directory (an unnamed temporary file in it: nothing is left behind), block-device (a whole unused device under /dev, opened exclusively: its contents are overwritten)',
      ],
      ['-l, --limit LIMIT', 'maximum storage size: bytes, or with a K/M/G/T suffix (e.g. 512M, 1.5G)'],
      ['-n, --name NAME', 'a name for people (up to 64 characters), shown by `snapshots` and the application'],
      ['-w, --writable-images', 'export the images read-write (writes land in the difference storage; a backup then warns that an image may differ from the take); default read-only'],
    ],
    example: [
      'blksnap-manager snapshot_create -d /dev/sdb -f /var/tmp/diff0 -l 1G',
      'blksnap-manager snapshot_create -d disk1 -d disk2 -f /var/tmp/diff1 -l 1.5G',
      'id=$(blksnap-manager snapshot_create -d disk1 -f /var/tmp/diff2 -l 512M) && blksnap-manager snapshot_take -i "$id"',
      'blksnap-manager snapshot_create -d disk1 -f /var/tmp/diff3 -l 512M --writable-images',
      'blksnap-manager snapshot_create -d disk1 -f /var/tmp/diff4 -l 512M --name "before upgrade"',
      'blksnap-manager snapshot_create -d disk1 -f /var/tmp --storage-form directory -l 1G',
      'blksnap-manager snapshot_create -d /dev/sdb -f /dev/sdc --storage-form block-device -l 8G',
    ],
    prints: 'the new snapshot id (with --json: {"id": ...})',
    options: {
      device: { type: 'string', short: 'd', multiple: true },
      file: { type: 'string', short: 'f' },
      'storage-form': { type: 'string' },
      limit: { type: 'string', short: 'l' },
      'writable-images': { type: 'boolean', short: 'w' },
      name: { type: 'string', short: 'n' },
    },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const devices = optList(values, 'device');
      const limitBytes = parseSize(needString(values, 'limit', '--limit LIMIT'), 'limit');
      if (limitBytes < 512) throw new BlksnapError('EINVAL', 'limit must be at least one sector (512 bytes)');
      const form = values['storage-form'] === undefined ? 'new-file' : StorageFormSchema.safeParse(values['storage-form']);
      if (typeof form !== 'string' && !form.success) {
        throw new BlksnapError('EINVAL', `--storage-form must be one of ${StorageFormSchema.options.join(', ')}, not ${JSON.stringify(values['storage-form'])}`);
      }
      const r = await client.call('snapshotCreate', {
        diffStoragePath: resolve(needString(values, 'file', '--file DIFF_STORAGE')),
        diffStorageForm: typeof form === 'string' ? form : form.data,
        limitSectors: bytesToSectors(limitBytes),
        devices,
        writableImages: values['writable-images'] === true,
        ...(typeof values.name === 'string' ? { name: values.name } : {}),
      });
      if (json) printJson(io, r);
      else io.stdout(`${r.id}\n`);
    },
  },
  {
    name: 'snapshot_add',
    summary: 'add a device to a snapshot (before it is taken)',
    usage: '-i ID -d DEV',
    help: [ID, DEV],
    example: `blksnap-manager snapshot_add -i ${EXAMPLE_ID} -d /dev/sdc`,
    options: { ...id, ...device },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const r = await client.call('snapshotAdd', { id: needSnapshotId(values), device: needString(values, 'device', '--device DEV') });
      if (json) printJson(io, r);
    },
  },
  {
    name: 'snapshot_take',
    summary: 'take the snapshot (all its devices at the same moment), freezing their mounted file systems',
    usage: '-i ID [--freeze MOUNTPOINT...]',
    help: [
      ID,
      [
        '--freeze MOUNTPOINT',
        'also freeze this file system around the take (repeatable; you must be able to open it). ' +
          'Engine devices mounted here through nbdfuse and a loop device are found and frozen without it',
      ],
    ],
    example: [`blksnap-manager snapshot_take -i ${EXAMPLE_ID}`, `blksnap-manager snapshot_take -i ${EXAMPLE_ID} --freeze /mnt/data`],
    prints: 'nothing; on stderr, each file system frozen and how long writers waited (with --json: {"ok": true, "frozen": [...]})',
    options: { ...id, freeze: { type: 'string', multiple: true } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const freeze = optList(values, 'freeze').map((p) => resolve(p));
      const r = await client.call('snapshotTake', { id: needSnapshotId(values), ...(freeze.length > 0 ? { freeze } : {}) });
      if (json) printJson(io, r);
      else for (const f of r.frozen ?? []) io.stderr(`froze ${escapeControlChars(f.mountPoint)} (${f.how}): writers waited ${f.frozenMs} ms\n`);
    },
  },
  {
    name: 'snapshot_info',
    summary: "print a device's snapshot state and image (and its NBD URI with the embedded engine)",
    usage: '-d DEV',
    help: [DEV],
    example: ['blksnap-manager snapshot_info -d /dev/sdb', 'blksnap-manager snapshot_info -d disk1 --json'],
    prints:
      'error_code (0, or a negative errno: -28 = the storage overflowed), image (empty until the snapshot is taken), ' +
      'nbd (its NBD URI, embedded engine), snapshot (the id holding the device, or - for none) and, on an error, ' +
      'error= with what it means and what to do',
    options: device,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const info = await client.call('snapshotInfo', { device: needString(values, 'device', '--device DEV') });
      if (json) printJson(io, info);
      else {
        const fields: [string, string | number][] = [['error_code', info.errorCode], ['image', info.image]];
        if (info.nbdUri) fields.push(['nbd', info.nbdUri]);
        if (info.snapshotId !== undefined) fields.push(['snapshot', info.snapshotId ?? '-']);
        if (info.errorCode !== 0) fields.push(['error', explainErrorCode(info.errorCode)]);
        printFields(io, fields);
      }
    },
  },
  {
    name: 'snapshot_collect',
    summary: 'print the ids of all snapshots',
    usage: '',
    help: [],
    example: 'blksnap-manager snapshot_collect',
    prints: 'one snapshot id per line (with --json: {"ids": [...]})',
    options: {},
    needsHelper: true,
    async run({ client, io, json }) {
      const r = await client.call('snapshotCollect', {});
      if (json) printJson(io, r);
      else io.stdout(r.ids.map((x) => `${x}\n`).join(''));
    },
  },
  {
    name: 'snapshot_waitevent',
    summary: 'wait up to MS milliseconds for the next event of a snapshot',
    usage: '-i ID -t MS',
    help: [ID, ['-t, --timeout MS', 'milliseconds to wait']],
    example: `blksnap-manager snapshot_waitevent -i ${EXAMPLE_ID} -t 1000`,
    prints: 'one event line (event=... snapshot=... time=...), or event=none when none came in time',
    options: { ...id, timeout: { type: 'string', short: 't' } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const timeoutMs = parseTimeout(needString(values, 'timeout', '--timeout MS'));
      const r = await client.call('snapshotWaitEvent', { id: needSnapshotId(values), timeoutMs }, { timeoutMs: timeoutMs + 15_000 });
      if (json) printJson(io, r);
      else io.stdout(r.event ? `${formatEvent(r.event)}\n` : 'event=none\n');
    },
  },
  {
    name: 'snapshot_watcher',
    summary: 'print the events of a snapshot until it is destroyed or the command is interrupted',
    usage: '-i ID',
    help: [ID],
    example: [`blksnap-manager snapshot_watcher -i ${EXAMPLE_ID}`, `blksnap-manager snapshot_watcher -i ${EXAMPLE_ID} --json > events.jsonl &`],
    prints:
      '"watching snapshot ID", then one line per event and state=taken / state=destroyed lines ' +
      '(with --json: one JSON object per line, the first {"watching": ID}); exits 0 when the snapshot is destroyed or on Ctrl-C, ' +
      'EIO (5) when the helper goes away first',
    options: id,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const snapshot = needSnapshotId(values);
      let finish: (error?: Error) => void = () => {};
      const done = new Promise<void>((resolve, reject) => {
        finish = (error) => (error ? reject(error) : resolve());
      });
      void done.catch(() => undefined); // awaited below; a close during subscribe must not go unhandled
      client.on('event', (event) => {
        if (event.snapshotId !== snapshot) return;
        io.stdout(json ? toJson({ event }) + '\n' : `${formatEvent(event)}\n`);
      });
      client.on('snapshot', (s) => {
        if (s.id !== snapshot) return;
        const frozen = (s.frozen ?? []).map((f) => ` frozen=${escapeControlChars(f.mountPoint)}:${f.frozenMs}ms`).join('');
        if (s.state === 'destroyed' || s.state === 'taken') io.stdout(json ? toJson({ snapshot: s }) + '\n' : `state=${s.state} snapshot=${s.id}${frozen}\n`);
        if (s.state === 'destroyed') finish();
      });
      client.onClose(() =>
        finish(new BlksnapError('EIO', `the helper closed the connection before snapshot ${snapshot} was destroyed (it stopped or was restarted)`)),
      );
      await client.call('subscribe', { topics: ['event', 'snapshot'] });
      const { ids } = await client.call('snapshotCollect', {});
      if (!ids.includes(snapshot)) throw new BlksnapError('ESRCH', `no snapshot ${snapshot}`);
      io.stdout(json ? toJson({ watching: snapshot }) + '\n' : `watching snapshot ${snapshot}\n`);
      const onSignal = (): void => finish();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        await done;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    },
  },
  {
    name: 'storage_info',
    summary: 'print the difference-storage use of a snapshot',
    usage: '-i ID',
    help: [ID],
    example: `blksnap-manager storage_info -i ${EXAMPLE_ID}`,
    prints: 'path, limit_sectors, allocated_sectors and used_sectors (512-byte sectors) as KEY=VALUE lines',
    options: id,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const s = await client.call('storageInfo', { id: needSnapshotId(values) });
      if (json) printJson(io, s);
      else
        printFields(io, [
          ['path', s.path],
          ['limit_sectors', s.limitSectors],
          ['allocated_sectors', s.allocatedSectors],
          ['used_sectors', s.usedSectors ?? 'unknown'],
        ]);
    },
  },
  {
    name: 'storage_grow',
    summary: "raise a held snapshot's difference-storage limit (embedded engine; VAL-7 module)",
    usage: '-i ID --by SIZE',
    help: [ID, ['-b, --by SIZE', 'how much more the storage may hold: bytes, or with a K/M/G/T suffix (e.g. 256M)']],
    example: `blksnap-manager storage_grow -i ${EXAMPLE_ID} --by 256M`,
    prints: 'the new limit_sectors as a KEY=VALUE line',
    options: { ...id, by: { type: 'string', short: 'b' } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const snapshotId = needSnapshotId(values);
      const bytes = parseSize(needString(values, 'by', '--by SIZE'), 'by');
      if (bytes < 512) throw new BlksnapError('EINVAL', '--by must be at least one sector (512 bytes)');
      await client.call('storageGrow', { id: snapshotId, sectors: bytesToSectors(bytes) });
      const s = await client.call('storageInfo', { id: snapshotId });
      if (json) printJson(io, { limitSectors: s.limitSectors });
      else printFields(io, [['limit_sectors', s.limitSectors]]);
    },
  },
  {
    name: 'snapshot_destroy',
    summary: 'destroy a snapshot (images and difference storage released; tracking continues)',
    usage: '-i ID',
    help: [ID],
    example: `blksnap-manager snapshot_destroy -i ${EXAMPLE_ID}`,
    options: id,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const r = await client.call('snapshotDestroy', { id: needSnapshotId(values) });
      if (json) printJson(io, r);
    },
  },
];
