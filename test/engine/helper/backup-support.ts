/** Test support for backup jobs through a real helper: snapshots, writes, hashes, job waits. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { HelperClient } from '../../../engine/protocol/client.js';
import type { MethodParams } from '../../../engine/protocol/methods.js';
import type { JobState } from '../../../engine/protocol/backup-schemas.js';

/** Creates a snapshot of `devices` in `dir` and takes it; returns its id. */
export async function takeSnapshot(client: HelperClient, dir: string, devices: string[], tag: string): Promise<string> {
  const { id } = await client.call('snapshotCreate', { diffStoragePath: join(dir, `diff-${tag}`), limitSectors: 1 << 17, devices });
  await client.call('snapshotTake', { id });
  return id;
}

/** The NBD URI of an engine device (read-write) or of the snapshot image of a device. */
export async function deviceUri(client: HelperClient, device: string): Promise<string> {
  const { devices } = await client.call('devices.list', {});
  const uri = devices.find((d) => d.name === device)?.nbdUri;
  if (!uri) throw new Error(`no NBD URI for ${device}`);
  return uri;
}

export async function imageUri(client: HelperClient, device: string): Promise<string> {
  const info = await client.call('snapshotInfo', { device });
  if (!info.nbdUri) throw new Error(`no snapshot image URI for ${device}`);
  return info.nbdUri;
}

/** Writes `pattern` bytes at `offset` through an NBD URI with qemu-io. */
export function qemuWrite(uri: string, pattern: number, offset: string, length: string): void {
  execFileSync('qemu-io', ['-f', 'raw', '-c', `write -P ${pattern} ${offset} ${length}`, uri], { stdio: 'pipe' });
}

/** SHA-256 of everything an NBD URI (or a file) reads as, through nbdcopy / qemu-img (independent of the code under test). */
export function sha256OfUri(uri: string): string {
  const data = execFileSync('nbdcopy', [uri, '-'], { maxBuffer: 1 << 30 });
  return createHash('sha256').update(data).digest('hex');
}

export function sha256OfFile(path: string): string {
  const data = execFileSync('cat', [path], { maxBuffer: 1 << 30 });
  return createHash('sha256').update(data).digest('hex');
}

/** Waits for a job to end. */
export async function waitJob(client: HelperClient, jobId: string): Promise<JobState> {
  for (;;) {
    const { job } = await client.call('jobs.wait', { jobId, timeoutMs: 10_000 });
    if (job.state !== 'running') return job;
  }
}

/** Starts a backup and waits for it; throws with the job's error when it failed. */
export async function backup(client: HelperClient, params: MethodParams<'backup.start'>): Promise<JobState> {
  const { jobId } = await client.call('backup.start', params);
  return waitJob(client, jobId);
}
