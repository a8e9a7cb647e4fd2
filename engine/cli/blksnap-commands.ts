/** The commands of the blksnap console tool, as clients of the helper. */
import { open } from 'node:fs/promises';
import { BlksnapError } from '../abi/errno.js';
import { decodeCbtMap } from '../protocol/cbt-encoding.js';
import { MAX_CBT_MAP_LENGTH } from '../protocol/limits.js';
import type { CommandSpec } from './command.js';
import { needString, optList, printFields, printJson } from './command.js';
import { formatEvent } from './event-format.js';
import { bytesToSectors, parseRange, parseSize, parseTimeout } from './values.js';

const DEV: [string, string] = ['-d, --device DEV', 'block device path, or (embedded engine) an image path or name'];
const ID: [string, string] = ['-i, --id ID', 'snapshot id (as printed by snapshot_create)'];
const device = { device: { type: 'string', short: 'd' } } as const;
const id = { id: { type: 'string', short: 'i' } } as const;

export const blksnapCommands: CommandSpec[] = [
  {
    name: 'version',
    summary: 'print the blksnap driver version',
    usage: '',
    help: [],
    example: 'blksnap-manager version',
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
    example: 'blksnap-manager attach -d /dev/sdb',
    options: device,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const r = await client.call('attach', { device: needString(values, 'device', '--device') });
      if (json) printJson(io, r);
    },
  },
  {
    name: 'detach',
    summary: 'detach the blksnap filter from a device (stop change tracking)',
    usage: '-d DEV',
    help: [DEV],
    example: 'blksnap-manager detach -d /dev/sdb',
    options: device,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const r = await client.call('detach', { device: needString(values, 'device', '--device') });
      if (json) printJson(io, r);
    },
  },
  {
    name: 'cbtinfo',
    summary: 'print the change tracker of a device',
    usage: '-d DEV',
    help: [DEV],
    example: 'blksnap-manager cbtinfo -d /dev/sdb',
    options: device,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const info = await client.call('cbtInfo', { device: needString(values, 'device', '--device') });
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
    example: 'blksnap-manager readcbtmap -d /dev/sdb -f /tmp/sdb.cbt',
    options: { ...device, file: { type: 'string', short: 'f' }, active: { type: 'boolean' } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const dev = needString(values, 'device', '--device');
      const file = needString(values, 'file', '--file');
      const active = values.active === true;
      const info = await client.call('cbtInfo', { device: dev });
      const out = await open(file, 'w', 0o644);
      let offset = 0;
      try {
        while (offset < info.blockCount) {
          const length = Math.min(MAX_CBT_MAP_LENGTH, info.blockCount - offset);
          const portion = await client.call('cbtMap', active ? { device: dev, offset, length, table: 'active' } : { device: dev, offset, length });
          if (portion.length === 0) break;
          const bytes = decodeCbtMap(portion.data, portion.length);
          await out.write(bytes, 0, bytes.length, offset);
          offset += bytes.length;
        }
      } finally {
        await out.close();
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
      if (ranges.length === 0) throw new BlksnapError('EINVAL', 'missing --range SECTOR:COUNT');
      const r = await client.call('cbtDirty', { device: needString(values, 'device', '--device'), ranges });
      if (json) printJson(io, r);
    },
  },
  {
    name: 'snapshot_create',
    summary: 'create a snapshot with a difference-storage file and add devices; prints the id',
    usage: '-d DEV [-d DEV...] -f DIFF_FILE -l LIMIT',
    help: [
      ['-d, --device DEV', 'device to add (repeatable)'],
      ['-f, --file DIFF_FILE', 'difference-storage file to create (must not exist)'],
      ['-l, --limit LIMIT', 'maximum storage size in bytes, K/M/G/T suffixes allowed'],
    ],
    example: 'blksnap-manager snapshot_create -d /dev/sdb -f /var/tmp/diff0 -l 1G',
    options: { device: { type: 'string', short: 'd', multiple: true }, file: { type: 'string', short: 'f' }, limit: { type: 'string', short: 'l' } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const devices = optList(values, 'device');
      const limitBytes = parseSize(needString(values, 'limit', '--limit'), 'limit');
      if (limitBytes < 512) throw new BlksnapError('EINVAL', 'limit must be at least one sector (512 bytes)');
      const r = await client.call('snapshotCreate', {
        diffStoragePath: needString(values, 'file', '--file'),
        limitSectors: bytesToSectors(limitBytes),
        devices,
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
    example: 'blksnap-manager snapshot_add -i 5b1c...-... -d /dev/sdc',
    options: { ...id, ...device },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const r = await client.call('snapshotAdd', { id: needString(values, 'id', '--id'), device: needString(values, 'device', '--device') });
      if (json) printJson(io, r);
    },
  },
  {
    name: 'snapshot_take',
    summary: 'take the snapshot (all its devices at the same moment)',
    usage: '-i ID',
    help: [ID],
    example: 'blksnap-manager snapshot_take -i 5b1c...',
    options: id,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const r = await client.call('snapshotTake', { id: needString(values, 'id', '--id') });
      if (json) printJson(io, r);
    },
  },
  {
    name: 'snapshot_info',
    summary: "print a device's snapshot state and image (and its NBD URI with the embedded engine)",
    usage: '-d DEV',
    help: [DEV],
    example: 'blksnap-manager snapshot_info -d /dev/sdb',
    options: device,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const info = await client.call('snapshotInfo', { device: needString(values, 'device', '--device') });
      if (json) printJson(io, info);
      else {
        const fields: [string, string | number][] = [['error_code', info.errorCode], ['image', info.image]];
        if (info.nbdUri) fields.push(['nbd', info.nbdUri]);
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
    example: 'blksnap-manager snapshot_waitevent -i 5b1c... -t 1000',
    options: { ...id, timeout: { type: 'string', short: 't' } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const timeoutMs = parseTimeout(needString(values, 'timeout', '--timeout'));
      const r = await client.call('snapshotWaitEvent', { id: needString(values, 'id', '--id'), timeoutMs }, { timeoutMs: timeoutMs + 15_000 });
      if (json) printJson(io, r);
      else io.stdout(r.event ? `${formatEvent(r.event)}\n` : 'event=none\n');
    },
  },
  {
    name: 'snapshot_watcher',
    summary: 'print the events of a snapshot until it is destroyed or the command is interrupted',
    usage: '-i ID',
    help: [ID],
    example: 'blksnap-manager snapshot_watcher -i 5b1c...',
    options: id,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const snapshot = needString(values, 'id', '--id');
      let finish: () => void = () => {};
      const done = new Promise<void>((resolve) => {
        finish = resolve;
      });
      client.on('event', (event) => {
        if (event.snapshotId !== snapshot) return;
        io.stdout(json ? JSON.stringify({ event }) + '\n' : `${formatEvent(event)}\n`);
      });
      client.on('snapshot', (s) => {
        if (s.id !== snapshot) return;
        if (s.state === 'destroyed' || s.state === 'taken') io.stdout(json ? JSON.stringify({ snapshot: s }) + '\n' : `state=${s.state} snapshot=${s.id}\n`);
        if (s.state === 'destroyed') finish();
      });
      client.onClose(() => finish());
      await client.call('subscribe', { topics: ['event', 'snapshot'] });
      const { ids } = await client.call('snapshotCollect', {});
      if (!ids.includes(snapshot)) throw new BlksnapError('ESRCH', `no snapshot ${snapshot}`);
      if (!json) io.stdout(`watching snapshot ${snapshot}\n`);
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
    example: 'blksnap-manager storage_info -i 5b1c...',
    options: id,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const s = await client.call('storageInfo', { id: needString(values, 'id', '--id') });
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
    name: 'snapshot_destroy',
    summary: 'destroy a snapshot (images and difference storage released; tracking continues)',
    usage: '-i ID',
    help: [ID],
    example: 'blksnap-manager snapshot_destroy -i 5b1c...',
    options: id,
    needsHelper: true,
    async run({ client, io, json, values }) {
      const r = await client.call('snapshotDestroy', { id: needString(values, 'id', '--id') });
      if (json) printJson(io, r);
    },
  },
];
