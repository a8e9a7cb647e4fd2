/** Commands beyond the blksnap tool: devices, exports and the image registry. */
import { resolve } from 'node:path';
import { BlksnapError } from '../abi/errno.js';
import type { ImageEntry } from '../protocol/schemas.js';
import type { CommandSpec, Io } from './command.js';
import { needString, optString, printFields, printJson, printTable } from './command.js';
import { formatBytes, parseSize } from './values.js';

function printImage(io: Io, json: boolean, image: ImageEntry): void {
  if (json) printJson(io, image);
  else printFields(io, [['name', image.name], ['path', image.path], ['size', image.capacity], ['nbd', image.nbdUri ?? '']]);
}

const IMAGE_PRINTS = 'name, path, size (bytes) and nbd (the URI to read and write the device through) as KEY=VALUE lines';
const NO_IMAGES = 'no images registered (blksnap-manager image create --path FILE --size SIZE creates one)';

const NAME: [string, string] = ['-n, --name NAME', 'device name (default: from the file name)'];

export const managerCommands: CommandSpec[] = [
  {
    name: 'devices',
    summary: 'list the devices the helper can work with (block devices and registered images)',
    usage: '',
    help: [],
    example: ['blksnap-manager devices', 'blksnap-manager devices --json'],
    prints: 'a table: KIND (image or block), DEVICE (what -d accepts), SIZE, SNAPSHOT (the id holding it, or -) and NBD (its URI, or -)',
    options: {},
    needsHelper: true,
    async run({ client, io, json }) {
      const r = await client.call('devices.list', {});
      if (json) {
        printJson(io, r);
        return;
      }
      const rows = r.devices.map((d) => [d.kind, d.ref, formatBytes(d.capacity), d.snapshotId ?? '-', d.nbdUri ?? '-']);
      printTable(io, ['KIND', 'DEVICE', 'SIZE', 'SNAPSHOT', 'NBD'], rows, 'no devices');
    },
  },
  {
    name: 'snapshots',
    summary: 'list the snapshots with their devices, images mode and difference storage',
    usage: '',
    help: [],
    example: ['blksnap-manager snapshots', 'blksnap-manager snapshots --json'],
    prints:
      'a table: ID, NAME (- without one), STATE (created or taken), CREATED and TAKEN (local date and time), IMAGES (ro, or rw for a snapshot with writable images), DEVICES and STORAGE (the difference-storage file)',
    options: {},
    needsHelper: true,
    async run({ client, io, json }) {
      const r = await client.call('snapshots.list', {});
      if (json) {
        printJson(io, r);
        return;
      }
      const rows = r.snapshots.map((s) => [
        s.id,
        s.name ?? '-',
        s.taken ? 'taken' : 'created',
        dateTimeText(s.createdMs),
        dateTimeText(s.takenMs),
        s.writableImages ? 'rw' : 'ro',
        s.devices.join(',') || '-',
        s.storagePath ?? '-',
      ]);
      printTable(io, ['ID', 'NAME', 'STATE', 'CREATED', 'TAKEN', 'IMAGES', 'DEVICES', 'STORAGE'], rows, 'no snapshots');
    },
  },
  {
    name: 'exports',
    summary: 'list the NBD exports (engine devices and snapshot images)',
    usage: '',
    help: [],
    example: 'blksnap-manager exports',
    prints: 'a table: KIND (device or snapshot-image), NAME, MODE (rw or ro), SIZE and URI',
    options: {},
    needsHelper: true,
    async run({ client, io, json }) {
      const r = await client.call('exports.list', {});
      if (json) printJson(io, r);
      else {
        const rows = r.exports.map((e) => [e.kind, e.name, e.readOnly ? 'ro' : 'rw', formatBytes(e.capacity), e.uri]);
        printTable(io, ['KIND', 'NAME', 'MODE', 'SIZE', 'URI'], rows, r.socketPath === null ? 'no NBD exports (the kernel driver has none)' : 'no NBD exports');
      }
    },
  },
  {
    name: 'image create',
    summary: 'create a sparse disk image, register it and open it as a device; prints its NBD URI',
    usage: '--path FILE --size SIZE [--name NAME]',
    help: [['-p, --path FILE', 'image file to create (must not exist)'], ['-s, --size SIZE', 'size in bytes, K/M/G/T suffixes allowed'], NAME],
    example: ['blksnap-manager image create --path /var/tmp/disk1.img --size 1G', 'blksnap-manager image create --path /var/tmp/big.img --size 1.5T --name big'],
    prints: IMAGE_PRINTS,
    options: { path: { type: 'string', short: 'p' }, size: { type: 'string', short: 's' }, name: { type: 'string', short: 'n' } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const path = resolve(needString(values, 'path', '--path FILE'));
      const size = parseSize(needString(values, 'size', '--size SIZE'));
      if (size < 512 || size % 512 !== 0) throw new BlksnapError('EINVAL', `--size must be a positive multiple of 512 bytes (e.g. 64M, 1G), got ${size}`);
      const name = optString(values, 'name');
      printImage(io, json, await client.call('images.create', name === undefined ? { path, size } : { path, size, name }));
    },
  },
  {
    name: 'image add',
    summary: 'register an existing image file (or block device) and open it as a device; prints its NBD URI',
    usage: '--path FILE [--name NAME]',
    help: [['-p, --path FILE', 'existing image file'], NAME],
    example: ['blksnap-manager image add --path /var/tmp/disk2.img --name disk2', 'blksnap-manager image add --path /dev/loop0'],
    prints: IMAGE_PRINTS,
    options: { path: { type: 'string', short: 'p' }, name: { type: 'string', short: 'n' } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const path = resolve(needString(values, 'path', '--path FILE'));
      const name = optString(values, 'name');
      printImage(io, json, await client.call('images.add', name === undefined ? { path } : { path, name }));
    },
  },
  {
    name: 'image list',
    summary: 'list registered images with their NBD URIs',
    usage: '',
    help: [],
    example: ['blksnap-manager image list', 'blksnap-manager image list --json'],
    prints: 'a table: NAME, PATH, SIZE and NBD (its URI, or - when the file could not be opened)',
    options: {},
    needsHelper: true,
    async run({ client, io, json }) {
      const r = await client.call('images.list', {});
      if (json) printJson(io, r);
      else printTable(io, ['NAME', 'PATH', 'SIZE', 'NBD'], r.images.map((i) => [i.name, i.path, i.nbdUri ? formatBytes(i.capacity) : '-', i.nbdUri ?? '-']), NO_IMAGES);
    },
  },
  {
    name: 'image remove',
    summary: 'unregister an image (the file is kept)',
    usage: '--path FILE | --name NAME',
    help: [['-p, --path FILE', 'image file'], ['-n, --name NAME', 'image name']],
    example: ['blksnap-manager image remove --name disk2', 'blksnap-manager image remove --path /var/tmp/disk2.img'],
    options: { path: { type: 'string', short: 'p' }, name: { type: 'string', short: 'n' } },
    needsHelper: true,
    allowPositionals: true,
    async run({ client, io, json, values, positionals }) {
      const path = optString(values, 'path');
      const image = path !== undefined ? resolve(path) : (optString(values, 'name') ?? positionals[0]);
      if (image === undefined) throw new BlksnapError('EINVAL', 'missing --path FILE or --name NAME');
      const r = await client.call('images.remove', { image });
      if (json) printJson(io, r);
    },
  },
  {
    name: 'workload start',
    summary: 'write to an engine device at a steady rate (embedded engine; overwrites its data)',
    usage: '-d DEV --rate MIBPS [--pattern random|sequential|hotspot]',
    help: [
      ['-d, --device DEV', 'engine device (image name or path)'],
      ['-r, --rate MIBPS', 'write rate in MiB/s'],
      ['-p, --pattern PATTERN', 'random (default), sequential, or hotspot (90% of writes in 10% of the device)'],
    ],
    example: 'blksnap-manager workload start -d disk1 --rate 20 --pattern hotspot',
    options: { device: { type: 'string', short: 'd' }, rate: { type: 'string', short: 'r' }, pattern: { type: 'string', short: 'p' } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const rate = Number(needString(values, 'rate', '--rate MIBPS'));
      if (!Number.isFinite(rate) || rate <= 0) throw new BlksnapError('EINVAL', '--rate must be a positive number of MiB/s');
      const pattern = optString(values, 'pattern') ?? 'random';
      if (pattern !== 'random' && pattern !== 'sequential' && pattern !== 'hotspot') {
        throw new BlksnapError('EINVAL', '--pattern must be random, sequential or hotspot');
      }
      const r = await client.call('workload.start', { device: needString(values, 'device', '--device DEV'), rateMiBps: rate, pattern });
      if (json) printJson(io, r);
    },
  },
  {
    name: 'workload stop',
    summary: 'stop the write workload on a device',
    usage: '-d DEV',
    help: [['-d, --device DEV', 'engine device']],
    example: 'blksnap-manager workload stop -d disk1',
    options: { device: { type: 'string', short: 'd' } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const r = await client.call('workload.stop', { device: needString(values, 'device', '--device DEV') });
      if (json) printJson(io, r);
    },
  },
  {
    name: 'workload list',
    summary: 'list running write workloads',
    usage: '',
    help: [],
    example: 'blksnap-manager workload list',
    prints: 'a table: DEVICE, PATTERN, RATE (asked, MiB/s), ACTUAL (MiB/s) and WRITTEN',
    options: {},
    needsHelper: true,
    async run({ client, io, json }) {
      const r = await client.call('workload.list', {});
      if (json) printJson(io, r);
      else {
        const rows = r.workloads.map((w) => [w.device, w.pattern, String(w.rateMiBps), w.actualMiBps.toFixed(1), formatBytes(w.bytesWritten)]);
        printTable(io, ['DEVICE', 'PATTERN', 'RATE', 'ACTUAL', 'WRITTEN'], rows, 'no workloads running');
      }
    },
  },
];

/** "2026-12-02 07:33:31" in local time, or "-". */
export function dateTimeText(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
