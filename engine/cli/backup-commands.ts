/** Backup commands: backup, verify, restore, catalog, backup-export (jobs of the helper; docs/backup.md). */
import { resolve } from 'node:path';
import { BlksnapError } from '../abi/errno.js';
import type { CommandSpec, OptionValues } from './command.js';
import { needString, optList, optString, printJson, printTable } from './command.js';
import { EXIT_INTERRUPTED, followJob } from './job-wait.js';
import { formatBytes } from './values.js';

const KINDS = ['full', 'incremental', 'differential'] as const;

function oneOf<T extends string>(values: OptionValues, name: string, allowed: readonly T[]): T | undefined {
  const v = optString(values, name);
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw new BlksnapError('EINVAL', `--${name} must be one of ${allowed.join(', ')}, got "${v}"`);
  return v as T;
}

/** The one positional DIR (made absolute). */
function dirArg(positionals: string[], what = 'DIR'): string {
  if (positionals.length !== 1) throw new BlksnapError('EINVAL', `expected one ${what} (see --help)`);
  return resolve(positionals[0]!);
}

const POINT: [string, string] = ['-p, --point P', 'backup point id (as catalog prints it)'];

export const backupCommands: CommandSpec[] = [
  {
    name: 'backup',
    summary: 'back up the devices of a taken snapshot into a backup set folder (one point per device); waits for the job',
    usage: '-i SNAPSHOT_ID -o DIR [-d DEV]... [--kind full|incremental|differential] [--format qcow2|raw] [--compress zlib|zstd] [--allow-full]',
    help: [
      ['-i, --id ID', 'the snapshot (taken) to back up'],
      ['-o, --output DIR', 'the backup set folder: DIR/<device>/ holds each device\'s chain'],
      ['-d, --device DEV', 'only these devices of the snapshot (repeatable; default: all)'],
      ['--kind KIND', 'full (default), incremental or differential'],
      ['--format FORMAT', 'qcow2 (default) or raw (full only)'],
      ['--compress zlib|zstd', 'compress the qcow2 clusters (zstd: smaller and faster to read; qemu 5.1 or later reads it)'],
      ['--allow-full', 'make a new full backup when the chain cannot continue (or exists already)'],
    ],
    example: [
      'blksnap-manager backup -i 34c88ecd-cacf-45e4-a00d-f2ffa0f87e23 -o /srv/backup',
      'blksnap-manager backup -i 34c88ecd-cacf-45e4-a00d-f2ffa0f87e23 -o /srv/backup --kind incremental',
    ],
    prints: 'a table: DEVICE, POINT, KIND, WRITTEN (bytes of the image file) and CHANGED, then (on stderr) the verify command that seals the new points; with --json, JobState lines and the final one with the result',
    options: {
      id: { type: 'string', short: 'i' },
      output: { type: 'string', short: 'o' },
      device: { type: 'string', short: 'd', multiple: true },
      kind: { type: 'string' },
      format: { type: 'string' },
      compress: { type: 'string' },
      'allow-full': { type: 'boolean' },
    },
    needsHelper: true,
    async run({ client, io, json, values }) {
      const kind = oneOf(values, 'kind', KINDS) ?? 'full';
      const format = oneOf(values, 'format', ['qcow2', 'raw'] as const);
      const compress = oneOf(values, 'compress', ['zlib', 'zstd'] as const);
      const devices = optList(values, 'device');
      const { jobId } = await client.call('backup.start', {
        snapshotId: needString(values, 'id', '--id ID').toLowerCase(),
        dir: resolve(needString(values, 'output', '--output DIR')),
        kind,
        ...(devices.length > 0 ? { devices } : {}),
        ...(format ? { format } : {}),
        ...(compress ? { compress } : {}),
        ...(values['allow-full'] === true ? { allowFull: true } : {}),
      });
      const { job, interrupted } = await followJob(client, jobId, io, json);
      if (interrupted) return EXIT_INTERRUPTED;
      if (!json && job.result?.kind === 'backup') {
        for (const p of job.result.points) if (p.fullBecause) io.stderr(`${p.device}: a new full backup, because ${p.fullBecause}\n`);
        printTable(io, ['DEVICE', 'POINT', 'KIND', 'WRITTEN', 'CHANGED'], job.result.points.map((p) => [p.device, p.pointId, p.pointKind, formatBytes(p.bytesWritten), formatBytes(p.changedBytes)]), 'no points');
        if (job.result.points.length > 0) {
          const dir = resolve(needString(values, 'output', '--output DIR'));
          io.stderr(`next: run "blksnap-manager verify ${dir}" to check the new points and seal them (it records each image's SHA-256, which restores then check)\n`);
        }
      }
      return 0;
    },
  },
  {
    name: 'verify',
    summary: 'verify backup points (chain links, block hashes, SHA-256) without restoring; waits for the job',
    usage: 'DIR [--point P] [--against-snapshot]',
    help: [POINT, ['--against-snapshot', 'also compare each point whose snapshot is still held with that snapshot image, byte for byte']],
    example: ['blksnap-manager verify /srv/backup', 'blksnap-manager verify /srv/backup/disk1 --point 0002-20261201-140200-incremental', 'blksnap-manager verify /srv/backup --against-snapshot'],
    prints: 'a table: POINT, RESULT (ok or failed) and the first PROBLEM; exits with EIO when a point failed',
    options: { point: { type: 'string', short: 'p' }, 'against-snapshot': { type: 'boolean' } },
    allowPositionals: true,
    needsHelper: true,
    async run({ client, io, json, values, positionals }) {
      const point = optString(values, 'point');
      const against = values['against-snapshot'] === true;
      const { jobId } = await client.call('backup.verify', { dir: dirArg(positionals), ...(point ? { point } : {}), ...(against ? { compareWithSnapshot: true } : {}) });
      const { job, interrupted } = await followJob(client, jobId, io, json);
      if (interrupted) return EXIT_INTERRUPTED;
      if (job.result?.kind !== 'verify') return 0;
      if (!json) printTable(io, ['POINT', 'RESULT', 'PROBLEM'], job.result.points.map((p) => [p.pointId, p.ok ? 'ok' : 'failed', p.problem ?? '-']), 'no points');
      if (!job.result.ok) throw new BlksnapError('EIO', `${job.result.points.filter((p) => !p.ok).length} backup point(s) failed verification`);
      return 0;
    },
  },
  {
    name: 'restore',
    summary: 'restore a backup point to a new image file, an existing file or a block device (overwritten!); waits for the job',
    usage: 'DIR --point P --to TARGET --yes [--force]',
    help: [
      POINT,
      ['-t, --to TARGET', 'a new image file (created), or an existing file or block device (overwritten)'],
      ['-y, --yes', 'confirm: TARGET is overwritten'],
      ['--force', 'allow restoring onto the device the backup was taken from'],
    ],
    example: 'blksnap-manager restore /srv/backup/disk1 --point 0001-20261201-140200-full --to /var/tmp/disk1-restored.img --yes',
    prints: 'target, bytes and sha256 as KEY=VALUE lines (the SHA-256 matches the image at take)',
    options: { point: { type: 'string', short: 'p' }, to: { type: 'string', short: 't' }, yes: { type: 'boolean', short: 'y' }, force: { type: 'boolean' } },
    allowPositionals: true,
    needsHelper: true,
    async run({ client, io, json, values, positionals }) {
      const dir = dirArg(positionals);
      const point = needString(values, 'point', '--point P');
      const target = resolve(needString(values, 'to', '--to TARGET'));
      if (values.yes !== true) throw new BlksnapError('EINVAL', `restore writes over ${target} if it exists: pass --yes to confirm`);
      const { jobId } = await client.call('backup.restore', { dir, point, target, ...(values.force === true ? { force: true } : {}) });
      const { job, interrupted } = await followJob(client, jobId, io, json);
      if (interrupted) return EXIT_INTERRUPTED;
      if (!json && job.result?.kind === 'restore') io.stdout(`target=${job.result.target}\nbytes=${job.result.bytes}\nsha256=${job.result.sha256}\n`);
      return 0;
    },
  },
  {
    name: 'catalog',
    summary: 'list the backup chains and points of a backup set folder',
    usage: 'DIR',
    help: [],
    example: ['blksnap-manager catalog /srv/backup', 'blksnap-manager catalog /srv/backup --json'],
    prints: 'a table: CHAIN, POINT, KIND, TIME, SIZE (of its file) and VERIFY (ok, failed or never)',
    options: {},
    allowPositionals: true,
    needsHelper: true,
    async run({ client, io, json, positionals }) {
      const cat = await client.call('backup.catalog', { dir: dirArg(positionals) });
      if (json) {
        printJson(io, cat);
        return 0;
      }
      const rows = cat.chains.flatMap((c) => c.points.map((p) => [c.chainDir, p.id, p.kind, p.time, formatBytes(p.fileSize), p.verify]));
      printTable(io, ['CHAIN', 'POINT', 'KIND', 'TIME', 'SIZE', 'VERIFY'], rows, `no backups in ${cat.dir}`);
      return 0;
    },
  },
  {
    name: 'backup-export',
    summary: 'serve a backup point read-only over NBD, to browse its files; prints the URI and the commands to mount it',
    usage: 'DIR --point P',
    help: [POINT],
    example: 'blksnap-manager backup-export /srv/backup --point 0001-20261201-140200-full',
    prints: 'name and uri as KEY=VALUE lines, then the commands that mount it read-only (nbdfuse, losetup -r, mount -o ro)',
    options: { point: { type: 'string', short: 'p' } },
    allowPositionals: true,
    needsHelper: true,
    async run({ client, io, json, values, positionals }) {
      const r = await client.call('backup.export', { dir: dirArg(positionals), point: needString(values, 'point', '--point P') });
      if (json) printJson(io, r);
      else io.stdout(`name=${r.name}\nuri=${r.uri}\n\nTo mount it read-only (as root):\n${r.mountHint}\n`);
      return 0;
    },
  },
];
