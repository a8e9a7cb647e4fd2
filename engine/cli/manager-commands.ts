/** Commands beyond the blksnap tool: devices, exports and the image registry. */
import { resolve } from 'node:path';
import { BlksnapError } from '../abi/errno.js';
import type { ImageEntry } from '../protocol/schemas.js';
import type { CommandSpec, Io } from './command.js';
import { needString, optString, printFields, printJson } from './command.js';
import { parseSize } from './values.js';

function printImage(io: Io, json: boolean, image: ImageEntry): void {
  if (json) printJson(io, image);
  else printFields(io, [['name', image.name], ['path', image.path], ['size', image.capacity], ['nbd', image.nbdUri ?? '']]);
}

const NAME: [string, string] = ['-n, --name NAME', 'device name (default: from the file name)'];

export const managerCommands: CommandSpec[] = [
  {
    name: 'devices',
    summary: 'list the devices the helper can work with (block devices and registered images)',
    usage: '',
    help: [],
    example: 'blksnap-manager devices',
    options: {},
    needsHelper: true,
    async run({ client, io, json }) {
      const { devices } = await client.call('devices.list', {});
      if (json) {
        printJson(io, devices);
        return;
      }
      for (const d of devices) {
        const cols = [d.kind.padEnd(5), d.ref.padEnd(24), String(d.capacity).padStart(14), `snapshot=${d.snapshotId ?? '-'}`];
        if (d.nbdUri) cols.push(`nbd=${d.nbdUri}`);
        io.stdout(cols.join(' ') + '\n');
      }
    },
  },
  {
    name: 'exports',
    summary: 'list the NBD exports (engine devices and snapshot images)',
    usage: '',
    help: [],
    example: 'blksnap-manager exports',
    options: {},
    needsHelper: true,
    async run({ client, io, json }) {
      const r = await client.call('exports.list', {});
      if (json) printJson(io, r);
      else for (const e of r.exports) io.stdout(`${e.kind.padEnd(14)} ${e.name.padEnd(20)} ${e.readOnly ? 'ro' : 'rw'} ${e.uri}\n`);
    },
  },
  {
    name: 'image create',
    summary: 'create a sparse disk image, register it and open it as a device; prints its NBD URI',
    usage: '--path FILE --size SIZE [--name NAME]',
    help: [['-p, --path FILE', 'image file to create (must not exist)'], ['-s, --size SIZE', 'size in bytes, K/M/G/T suffixes allowed'], NAME],
    example: 'blksnap-manager image create --path /var/tmp/disk1.img --size 1G',
    options: { path: { type: 'string', short: 'p' }, size: { type: 'string', short: 's' }, name: { type: 'string', short: 'n' } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const path = resolve(needString(values, 'path', '--path'));
      const size = parseSize(needString(values, 'size', '--size'));
      const name = optString(values, 'name');
      printImage(io, json, await client.call('images.create', name === undefined ? { path, size } : { path, size, name }));
    },
  },
  {
    name: 'image add',
    summary: 'register an existing image file (or block device) and open it as a device; prints its NBD URI',
    usage: '--path FILE [--name NAME]',
    help: [['-p, --path FILE', 'existing image file'], NAME],
    example: 'blksnap-manager image add --path /var/tmp/disk2.img --name disk2',
    options: { path: { type: 'string', short: 'p' }, name: { type: 'string', short: 'n' } },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const path = resolve(needString(values, 'path', '--path'));
      const name = optString(values, 'name');
      printImage(io, json, await client.call('images.add', name === undefined ? { path } : { path, name }));
    },
  },
  {
    name: 'image list',
    summary: 'list registered images with their NBD URIs',
    usage: '',
    help: [],
    example: 'blksnap-manager image list',
    options: {},
    needsHelper: true,
    async run({ client, io, json }) {
      const { images } = await client.call('images.list', {});
      if (json) printJson(io, images);
      else for (const i of images) io.stdout(`${i.name} ${i.path} ${i.capacity} ${i.nbdUri ?? '-'}\n`);
    },
  },
  {
    name: 'image remove',
    summary: 'unregister an image (the file is kept)',
    usage: '--path FILE | --name NAME',
    help: [['-p, --path FILE', 'image file'], ['-n, --name NAME', 'image name']],
    example: 'blksnap-manager image remove --name disk2',
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
      const rate = Number(needString(values, 'rate', '--rate'));
      if (!Number.isFinite(rate) || rate <= 0) throw new BlksnapError('EINVAL', '--rate must be a positive number of MiB/s');
      const pattern = optString(values, 'pattern') ?? 'random';
      if (pattern !== 'random' && pattern !== 'sequential' && pattern !== 'hotspot') {
        throw new BlksnapError('EINVAL', '--pattern must be random, sequential or hotspot');
      }
      const r = await client.call('workload.start', { device: needString(values, 'device', '--device'), rateMiBps: rate, pattern });
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
      const r = await client.call('workload.stop', { device: needString(values, 'device', '--device') });
      if (json) printJson(io, r);
    },
  },
  {
    name: 'workload list',
    summary: 'list running write workloads',
    usage: '',
    help: [],
    example: 'blksnap-manager workload list',
    options: {},
    needsHelper: true,
    async run({ client, io, json }) {
      const { workloads } = await client.call('workload.list', {});
      if (json) printJson(io, workloads);
      else for (const w of workloads) io.stdout(`${w.device} ${w.pattern} rate=${w.rateMiBps} actual=${w.actualMiBps.toFixed(1)} written=${w.bytesWritten}\n`);
    },
  },
];
